# `anvil --mode=mpc` and `anvil --mode=fixed` as a user runs them (issue #11's commands), on
# the trained digits CNN: build the server and public engines at batch 16, run the server
# engine in fixed point on the whole test split, check the outputs against onnxruntime
# (check_fixed_outputs.py), and check that a public, truncated or foreign engine, a wrong
# input and a build without calibration data fail with a clear message.
# -DANVIL=cli -DMODELS=tests/models/precision -DPYTHON=venv python -DOUT=dir
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
set(CNN ${MODELS}/digits_cnn)

function(run_ok)
  execute_process(COMMAND ${ANVIL} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "anvil ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# Runs anvil expecting failure with `pattern` in its message.
function(run_fails pattern)
  execute_process(COMMAND ${ANVIL} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    message(FATAL_ERROR "anvil ${ARGN} succeeded but should have failed:\n${out}")
  endif()
  if(NOT "${out}${err}" MATCHES "${pattern}")
    message(FATAL_ERROR "anvil ${ARGN} failed without '${pattern}' in its message:\n${out}\n${err}")
  endif()
endfunction()

run_ok(--onnx=${CNN}/model.onnx --mode=mpc --calibData=${CNN}/calib --shapes=input:16x1x8x8
       --saveEngine=${OUT}/server.engine --savePublic=${OUT}/public.engine)
foreach(want "Lookup layers \\(5" "maxpool shift=" "headroom" "top-1 [0-9.]+% of [0-9]+ rows")
  if(NOT out MATCHES "${want}")
    message(FATAL_ERROR "the build summary lacks '${want}':\n${out}")
  endif()
endforeach()
file(SIZE ${OUT}/server.engine server_bytes)
file(SIZE ${OUT}/public.engine public_bytes)
if(NOT public_bytes LESS server_bytes)
  message(FATAL_ERROR "the public engine (${public_bytes} B) is not smaller than the server's (${server_bytes} B)")
endif()

run_ok(--loadEngine=${OUT}/server.engine --mode=fixed --loadInputs=input:${CNN}/test/input.npy
       --saveOutputs=${OUT}/fixed)
if(NOT EXISTS ${OUT}/fixed/logits.npy)
  message(FATAL_ERROR "--saveOutputs wrote no logits.npy:\n${out}")
endif()
if(EXISTS ${PYTHON})
  execute_process(COMMAND ${PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_fixed_outputs.py ${CNN} ${OUT}/fixed/logits.npy 0.99
                  RESULT_VARIABLE rc OUTPUT_VARIABLE pout ERROR_VARIABLE perr)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fixed outputs disagree with onnxruntime:\n${pout}\n${perr}")
  endif()
  message(STATUS "${pout}")
endif()

run_fails("is an mpc engine \\(built with --mode=mpc\\): run it with --mode=fixed" --loadEngine=${OUT}/server.engine)
run_fails("public mpc engine" --loadEngine=${OUT}/public.engine --mode=fixed --loadInputs=input:${CNN}/test/input.npy)
execute_process(COMMAND head -c 300 ${OUT}/server.engine OUTPUT_FILE ${OUT}/truncated.engine)
run_fails("truncated" --loadEngine=${OUT}/truncated.engine --mode=fixed --loadInputs=input:${CNN}/test/input.npy)
file(WRITE ${OUT}/foreign.engine "this is not an engine")
run_fails("not an mpc engine" --loadEngine=${OUT}/foreign.engine --mode=fixed --loadInputs=input:${CNN}/test/input.npy)
run_fails("input 'input'.*shape" --loadEngine=${OUT}/server.engine --mode=fixed --loadInputs=input:${MODELS}/digits_mlp/test/input.npy)
run_fails("calibration data" --onnx=${CNN}/model.onnx --mode=mpc --shapes=input:16x1x8x8 --saveEngine=${OUT}/x.engine)
run_fails("does not apply" --onnx=${CNN}/model.onnx --mode=mpc --int8 --saveEngine=${OUT}/x.engine)
