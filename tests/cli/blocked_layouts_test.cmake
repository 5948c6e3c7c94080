# --blockedLayouts: "always" stores every region that blocked kernels serve in NCHW16c /
# NCHW8c (the layer info counts blocked layers and the Reorders at the boundaries, and the
# result matches the row-major engine's), "never" none; a bad value is an error.
file(MAKE_DIRECTORY ${OUT})
function(run_info mode var)
  execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --blockedLayouts=${mode} --exportLayerInfo=${OUT}/${mode}.json
                          --dumpLayerInfo --iterations=1 --warmUp=0 --duration=0 --saveOutputs=${OUT}/${mode}
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "--blockedLayouts=${mode} failed:\n${out}${err}")
  endif()
  file(READ ${OUT}/${mode}.json json)
  string(JSON blocked GET "${json}" BlockedLayers)
  string(JSON reorders GET "${json}" Reorders)
  set(${var}_blocked ${blocked} PARENT_SCOPE)
  set(${var}_reorders ${reorders} PARENT_SCOPE)
  set(${var}_out "${out}" PARENT_SCOPE)
endfunction()

run_info(never never)
run_info(always always)
if(NOT never_blocked EQUAL 0 OR NOT never_reorders EQUAL 0)
  message(FATAL_ERROR "--blockedLayouts=never still blocked ${never_blocked} layers, ${never_reorders} reorders")
endif()
if(always_out MATCHES "tactic=[^ ]*avx2" OR always_out MATCHES "tactic=[^ ]*avx512")
  # A host with AVX2 or AVX-512 has blocked kernels: every region must be blocked.
  if(always_blocked LESS 1 OR always_reorders LESS 1)
    message(FATAL_ERROR "--blockedLayouts=always blocked ${always_blocked} layers with ${always_reorders} reorders:\n${always_out}")
  endif()
  if(NOT always_out MATCHES "Blocked layout: ${always_blocked} layers, ${always_reorders} reorders")
    message(FATAL_ERROR "--dumpLayerInfo does not print the blocked-layout line:\n${always_out}")
  endif()
  if(NOT always_out MATCHES "anvil.Reorder")
    message(FATAL_ERROR "no Reorder layer in the layer info:\n${always_out}")
  endif()
endif()
message(STATUS "always: ${always_blocked} blocked layers, ${always_reorders} reorders")

execute_process(COMMAND ${PY} -c "
import sys, glob, os, numpy as np
a = sorted(glob.glob(os.path.join(sys.argv[1], '*.npy')))
assert a, 'no outputs'
for f in a:
    x = np.load(f); y = np.load(os.path.join(sys.argv[2], os.path.basename(f)))
    err = float(np.max(np.abs(x - y) / (1e-3 + np.abs(y))))
    assert err < 1e-4, f'{f}: rel err {err}'
print('blocked == row-major on', len(a), 'outputs')
" ${OUT}/always ${OUT}/never RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "blocked outputs differ from the row-major engine's:\n${out}${err}")
endif()

execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --blockedLayouts=sometimes --skipInference
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "--blockedLayouts is auto, never or always")
  message(FATAL_ERROR "a bad --blockedLayouts value was accepted:\n${out}${err}")
endif()
