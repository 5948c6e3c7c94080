# INT8 chains end to end through the CLI (tests/cli/int8_chain_model.py builds the model):
#  - with every conv in INT8, the activations between them are stored u8 (the layer info's
#    OutputTypes), the MaxPool between two of them runs on the bytes, the model output stays f32;
#  - --layerOutputTypes=c1:fp32 keeps the one value read as a residual in f32: the other
#    lowered values are stored exactly as the readers quantize them, so the outputs equal
#    the all-f32-storage engine's (--layerOutputTypes=*:fp32) bit for bit;
#  - with the residual quantized too the outputs stay close;
#  - --layerOutputTypes=c2:fp32 keeps the MaxPool on f32 too, with the same bits (the max of
#    the bytes is the quantized max);
#  - int8 where it cannot be had is an error under obey; fp16 storage is refused;
#  - the steps that read or write u8 are timed again as they run: the timing cache holds a
#    choice among INT8 kernels only for a node with a u8 output (")->u8|" in its key).
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/calib)
execute_process(COMMAND ${PY} ${MODELGEN} ${OUT}/m.onnx ${OUT} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "making the model failed: ${err}")
endif()

function(anvil_run name expect_ok)
  execute_process(COMMAND ${ANVIL} --onnx=${OUT}/m.onnx --int8 --calibData=${OUT}/calib --layerPrecisions=*:int8
                          --precisionConstraints=obey ${ARGN} --loadInputs=input:${OUT}/input.npy
                          --saveOutputs=${OUT}/${name} --exportLayerInfo=${OUT}/${name}.json --dumpLayerInfo
                          --iterations=1 --warmUp=0 --duration=0
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(expect_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: anvil failed:\n${out}${err}")
  elseif(NOT expect_ok AND rc EQUAL 0)
    message(FATAL_ERROR "${name}: anvil should have failed:\n${out}")
  endif()
  set(${name}_out "${out}${err}" PARENT_SCOPE)
endfunction()

# The OutputTypes of layers c1..c4 and p2 in NAME.json, as "c1=u8;c2=..."
function(output_types name var)
  file(READ ${OUT}/${name}.json json)
  string(JSON n LENGTH "${json}" Layers)
  math(EXPR last "${n} - 1")
  set(r "")
  foreach(i RANGE ${last})
    string(JSON ln GET "${json}" Layers ${i} Name)
    if(ln MATCHES "^(c[1-4]|p2)$")
      string(JSON t GET "${json}" Layers ${i} OutputTypes 0)
      string(APPEND r "${ln}=${t};")
    endif()
  endforeach()
  set(${var} "${r}" PARENT_SCOPE)
endfunction()

function(compare a b tol)
  execute_process(COMMAND ${PY} -c "
import sys, numpy as np
a = np.load(sys.argv[1] + '/output.npy'); b = np.load(sys.argv[2] + '/output.npy'); tol = float(sys.argv[3])
err = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))
print(err)
assert (err == 0.0) if tol == 0 else (err < tol), f'{sys.argv[1]} vs {sys.argv[2]}: {err} (tolerance {tol})'
" ${OUT}/${a} ${OUT}/${b} ${tol} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${a} vs ${b}:\n${out}${err}")
  endif()
  message(STATUS "${a} vs ${b}: ${out}")
endfunction()

file(REMOVE ${OUT}/chain_tc.json)
anvil_run(chain TRUE --timingCacheFile=${OUT}/chain_tc.json)
file(READ ${OUT}/chain_tc.json tc)
if(NOT tc MATCHES "\\)->u8\\|i8_[a-z0-9_]+@[0-9]+,i8_")
  message(FATAL_ERROR "chain: no INT8 step was timed with its u8 output:\n${tc}")
endif()
output_types(chain t)
if(NOT t STREQUAL "c1=u8;c2=u8;p2=u8;c3=u8;c4=f32;")
  message(FATAL_ERROR "chain: output types ${t}, expected c1..c3 and the MaxPool u8, c4 (the model output) f32\n${chain_out}")
endif()
if(NOT chain_out MATCHES "outputTypes=u8\\([0-9.e-]+,[0-9]+\\)")
  message(FATAL_ERROR "--dumpLayerInfo does not show the u8 grid:\n${chain_out}")
endif()

anvil_run(plain TRUE --layerOutputTypes=*:fp32)
output_types(plain t)
if(NOT t STREQUAL "c1=f32;c2=f32;p2=f32;c3=f32;c4=f32;")
  message(FATAL_ERROR "--layerOutputTypes=*:fp32: output types ${t}")
endif()

anvil_run(noresidual TRUE --layerOutputTypes=c1:fp32)
output_types(noresidual t)
if(NOT t STREQUAL "c1=f32;c2=u8;p2=u8;c3=u8;c4=f32;")
  message(FATAL_ERROR "--layerOutputTypes=c1:fp32: output types ${t}")
endif()
compare(noresidual plain 0)
compare(chain plain 0.05)

# The MaxPool's input is c2's output: c2:fp32 keeps it f32, and the MaxPool with it.
anvil_run(c2plain TRUE --layerOutputTypes=c2:fp32)
output_types(c2plain t)
if(NOT t STREQUAL "c1=u8;c2=f32;p2=f32;c3=u8;c4=f32;")
  message(FATAL_ERROR "--layerOutputTypes=c2:fp32: output types ${t}")
endif()
compare(c2plain chain 0)

anvil_run(outint8 FALSE --layerOutputTypes=c4:int8)
if(NOT outint8_out MATCHES "c4'?: --layerOutputTypes asks for int8, but its output is a model output")
  message(FATAL_ERROR "unexpected error for an int8 model output:\n${outint8_out}")
endif()
anvil_run(fp16 FALSE --layerOutputTypes=c1:fp16)
if(NOT fp16_out MATCHES "is not fp32 or int8")
  message(FATAL_ERROR "unexpected error for fp16 storage:\n${fp16_out}")
endif()
anvil_run(unknown FALSE --layerOutputTypes=nope:int8)
if(NOT unknown_out MATCHES "no layer is named 'nope'")
  message(FATAL_ERROR "unexpected error for an unknown layer:\n${unknown_out}")
endif()
