# Runs the anvil CLI on the bundled example and compares with onnxruntime's output;
# also checks that bad flags and missing files fail with a non-zero exit.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${ANVIL} --onnx=${SRC}/examples/models/tiny_cnn.onnx
                        --loadInputs=input:${SRC}/examples/models/tiny_cnn.input.npy --saveOutputs=${OUT}
                        --iterations=1 --duration=0 --warmUp=0
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "anvil failed on the example (${rc})")
endif()
execute_process(COMMAND ${PY} -c "import numpy as np,sys; a=np.load(sys.argv[1]); b=np.load(sys.argv[2]); e=abs(a-b).max()/max(b.max()-b.min(),1e-12); print('example rel err', e); sys.exit(0 if e<=1e-4 else 1)"
                        ${OUT}/probs.npy ${SRC}/examples/models/tiny_cnn.expected.npy RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "example output differs from onnxruntime")
endif()
foreach(bad "--frobnicate=1" "--onnx=/nonexistent.onnx" "--onnx")
  execute_process(COMMAND ${ANVIL} ${bad} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
  if(rc EQUAL 0)
    message(FATAL_ERROR "anvil ${bad} exited 0")
  endif()
  message(STATUS "anvil ${bad}: ${err}")
endforeach()
