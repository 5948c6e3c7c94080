# A CUDA engine of MODEL cross-built on a machine without its GPU (--device=cuda
# --computeCapability=9.0): every layer of --exportLayerInfo carries a Device, >= 90% of the
# layers run on cuda, all of them untimed; the saved engine loaded without --simulate is
# refused with "needs a GPU with compute capability 9.0" and a non-zero exit (never a crash)
# where no such GPU is present.
file(MAKE_DIRECTORY ${OUT})
execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --device=cuda --computeCapability=9.0 --saveEngine=${OUT}/e.engine
                        --exportLayerInfo=${OUT}/layers.json --skipInference ${SHAPES}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cross-build failed (rc ${rc}):\n${out}${err}")
endif()
string(REGEX MATCH "\\[I\\] Placement: [^\n]*" line "${out}")
message(STATUS "${line}")
if(NOT out MATCHES "\\[I\\] Cross-build: [0-9]+ CUDA layers have tactics chosen by heuristics")
  message(FATAL_ERROR "no cross-build line:\n${out}")
endif()
execute_process(COMMAND ${PY} ${CHECK} ${OUT}/layers.json --untimed --min-cuda=0.9
                OUTPUT_VARIABLE cout ERROR_VARIABLE cerr RESULT_VARIABLE crc)
message(STATUS "${cout}")
if(NOT crc EQUAL 0)
  message(FATAL_ERROR "layer info check failed:\n${cout}${cerr}")
endif()
execute_process(COMMAND ${ANVIL} --loadEngine=${OUT}/e.engine --iterations=1 --duration=0 --warmUp=0
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(HAVE_GPU)
  message(STATUS "a GPU is present: the refusal is not checked")
elseif(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "a CUDA engine ran (or crashed: rc ${rc}) without a GPU:\n${out}${err}")
elseif(NOT "${out}${err}" MATCHES "needs a GPU with compute capability 9\\.0")
  message(FATAL_ERROR "the refusal does not say what is needed:\n${out}${err}")
endif()
