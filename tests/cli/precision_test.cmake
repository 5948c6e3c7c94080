# The precision flags on the tiny CNN, end to end through the CLI:
#  - --int8 --calibData: linear layers in INT8 (forced with --layerPrecisions=*:int8 and
#    obey), the layer info carries the precision, its reason, kappa statistics, the input's
#    quantization and the measured error; the outputs stay close to FP32's; the calibration
#    cache is written and, read back, gives the same engine;
#  - --layerPrecisions with an unknown layer and a bad precision are errors;
#  - --precision=auto verifies on held-out batches and reports it;
#  - --fp16 / --bf16 (forced) build and run close to FP32; --precisionReport writes JSON
#    and a table; --adaptivePrecision / --componentPrecision are accepted;
#  - --int8 by cost gets the precision guard's verdict; --noPrecisionGuard skips it.
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/calib)
# 12 samples: the example input and noisy copies, stacked along the batch axis.
execute_process(COMMAND ${PY} -c "
import sys, numpy as np
x = np.load(sys.argv[1]); rng = np.random.default_rng(3)
np.save(sys.argv[2], np.concatenate([x] + [(x + rng.normal(0, 0.3, x.shape)).astype(np.float32) for _ in range(11)]))
" ${INPUT} ${OUT}/calib/input.npy RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "making calibration data failed: ${err}")
endif()

function(anvil_run name expect_ok)
  execute_process(COMMAND ${ANVIL} --onnx=${MODEL} ${ARGN} --loadInputs=input:${INPUT} --saveOutputs=${OUT}/${name}
                          --exportLayerInfo=${OUT}/${name}.json --dumpLayerInfo --iterations=1 --warmUp=0 --duration=0
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(expect_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: anvil failed:\n${out}${err}")
  elseif(NOT expect_ok AND rc EQUAL 0)
    message(FATAL_ERROR "${name}: anvil should have failed:\n${out}")
  endif()
  set(${name}_out "${out}${err}" PARENT_SCOPE)
endfunction()

# Output closeness to FP32: max |a - b| / max |b| below `tol`.
function(close_to_fp32 name tol)
  execute_process(COMMAND ${PY} -c "
import sys, glob, os, numpy as np
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.npy'))):
    a = np.load(f); b = np.load(os.path.join(sys.argv[2], os.path.basename(f)))
    err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
    assert err < float(sys.argv[3]), f'{f}: {err} >= {sys.argv[3]}'
    print(os.path.basename(f), err)
" ${OUT}/${name} ${OUT}/fp32 ${tol} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} is not close to fp32:\n${out}${err}")
  endif()
  message(STATUS "${name} vs fp32: ${out}")
endfunction()

anvil_run(fp32 TRUE)

# --int8 by cost: the precision guard compares the engine with the FP32 one whole where some
# layer took INT8 by cost and says so; --noPrecisionGuard skips it.
anvil_run(guard TRUE --int8 --calibData=${OUT}/calib --verbose)
if(NOT guard_out MATCHES "precision guard: no layer took a reduced precision by cost" AND
   NOT guard_out MATCHES "\\[I\\] Precision guard: reduced-precision engine [0-9.e+-]+ ms, FP32 engine [0-9.e+-]+ ms")
  message(FATAL_ERROR "--int8 without the precision guard's verdict:\n${guard_out}")
endif()
anvil_run(noguard TRUE --int8 --calibData=${OUT}/calib --verbose --noPrecisionGuard)
if(noguard_out MATCHES "[Pp]recision guard")
  message(FATAL_ERROR "--noPrecisionGuard still ran the guard:\n${noguard_out}")
endif()

# Forced INT8 on every linear layer.
anvil_run(int8 TRUE --int8 --calibData=${OUT}/calib --calib=${OUT}/calib.cache --layerPrecisions=*:int8
          --precisionConstraints=obey --dumpProfile)
if(NOT int8_out MATCHES "Precision: linear layers i8=3")
  message(FATAL_ERROR "not every linear layer is INT8:\n${int8_out}")
endif()
# Its profile has no recomputed components to report (only the adaptive layers count them).
if(int8_out MATCHES "Adaptive precision:")
  message(FATAL_ERROR "the profile of an engine without --adaptivePrecision reports recomputed components:\n${int8_out}")
endif()
if(NOT int8_out MATCHES "precision=i8 [^\n]*precisionReason=user kappa\\(median/p99/max\\)=[^\n]* measuredError=[0-9.e-]+ inputScale=")
  message(FATAL_ERROR "--dumpLayerInfo lacks the precision details:\n${int8_out}")
endif()
file(READ ${OUT}/int8.json json)
string(JSON p GET "${json}" Layers 0 Precision)
string(JSON why GET "${json}" Layers 0 PrecisionReason)
string(JSON me GET "${json}" Layers 0 MeasuredError)
string(JSON zp GET "${json}" Layers 0 InputZeroPoint)
if(NOT p STREQUAL "i8" OR NOT why STREQUAL "user")
  message(FATAL_ERROR "layer 0 is ${p} (${why}), expected i8 (user)")
endif()
message(STATUS "int8 layer 0: measured error ${me}, input zero point ${zp}")
close_to_fp32(int8 0.1)
if(NOT EXISTS ${OUT}/calib.cache)
  message(FATAL_ERROR "--calib did not write the calibration cache")
endif()
file(READ ${OUT}/calib.cache cache)
if(NOT cache MATCHES "^anvil-calibration-1 percentile\n")
  message(FATAL_ERROR "unexpected cache header:\n${cache}")
endif()
# The cache alone (no samples) gives the same ranges, hence the same outputs.
anvil_run(int8_cached TRUE --int8 --calib=${OUT}/calib.cache --layerPrecisions=*:int8 --precisionConstraints=obey)
execute_process(COMMAND ${PY} -c "
import sys, glob, os, numpy as np
for f in sorted(glob.glob(os.path.join(sys.argv[1], '*.npy'))):
    assert np.array_equal(np.load(f), np.load(os.path.join(sys.argv[2], os.path.basename(f)))), f
" ${OUT}/int8_cached ${OUT}/int8 RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the cached ranges give other outputs:\n${err}")
endif()

# Errors that name what is wrong.
anvil_run(bad_name FALSE --int8 --calibData=${OUT}/calib --layerPrecisions=nope:int8)
if(NOT bad_name_out MATCHES "names no layer 'nope'")
  message(FATAL_ERROR "unknown layer: unexpected message:\n${bad_name_out}")
endif()
anvil_run(bad_prec FALSE --layerPrecisions=conv1:int4)
if(NOT bad_prec_out MATCHES "not fp32, fp16, bf16 or int8")
  message(FATAL_ERROR "bad precision: unexpected message:\n${bad_prec_out}")
endif()
anvil_run(auto_nodata FALSE --int8 --precision=auto)
if(NOT auto_nodata_out MATCHES "needs --calibData")
  message(FATAL_ERROR "--precision=auto without data: unexpected message:\n${auto_nodata_out}")
endif()

# Automatic, verified on the held-out batches (a quarter of 12: 3).
anvil_run(auto TRUE --int8 --fp16 --precision=auto --calibData=${OUT}/calib --accuracyTolerance=0.05
          --precisionReport=${OUT}/report.json)
if(NOT auto_out MATCHES "Precision verified: relative error [0-9.e-]+ on held-out calibration batches")
  message(FATAL_ERROR "--precision=auto did not report its verification:\n${auto_out}")
endif()
close_to_fp32(auto 0.1)
if(NOT EXISTS ${OUT}/report.json OR NOT EXISTS ${OUT}/report.json.txt)
  message(FATAL_ERROR "--precisionReport did not write both files")
endif()
file(READ ${OUT}/report.json rep)
string(JSON n LENGTH "${rep}" Layers)
if(n LESS 3)
  message(FATAL_ERROR "the precision report lists ${n} layers, expected the 3 linear ones:\n${rep}")
endif()

# Half precisions, forced.
anvil_run(fp16 TRUE --fp16 --layerPrecisions=*:fp16 --precisionConstraints=obey)
if(NOT fp16_out MATCHES "Precision: linear layers f16=3")
  message(FATAL_ERROR "not every linear layer is FP16:\n${fp16_out}")
endif()
close_to_fp32(fp16 0.01)
anvil_run(bf16 TRUE --bf16 --layerPrecisions=*:bf16 --precisionConstraints=obey)
if(NOT bf16_out MATCHES "Precision: linear layers bf16=3")
  message(FATAL_ERROR "not every linear layer is BF16:\n${bf16_out}")
endif()
close_to_fp32(bf16 0.05)

# Per component and adaptive: accepted and close to FP32.
anvil_run(component TRUE --int8 --calibData=${OUT}/calib --layerPrecisions=*:int8 --componentPrecision=0.01)
close_to_fp32(component 0.1)
anvil_run(adaptive TRUE --int8 --calibData=${OUT}/calib --layerPrecisions=*:int8 --adaptivePrecision=0.5
          --adaptiveTest=both --exportProfile=${OUT}/adaptive.profile.json)
close_to_fp32(adaptive 0.1)
# The profile counts each INT8 layer's recomputed components (bench/precision.py sums them).
file(READ ${OUT}/adaptive.profile.json prof)
string(JSON layer GET "${prof}" 1)
string(JSON rec GET "${layer}" recomputed)
string(JSON comp GET "${layer}" components)
string(JSON frac GET "${layer}" recomputedFraction)
if(NOT comp GREATER 0 OR rec GREATER comp)
  message(FATAL_ERROR "the adaptive profile's counts are off (recomputed ${rec} of ${comp}):\n${prof}")
endif()
message(STATUS "adaptive layer 1: recomputed ${rec} of ${comp} (${frac})")
