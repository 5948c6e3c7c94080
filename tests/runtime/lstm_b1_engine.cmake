# Writes the batch-1 LSTM model (make_lstm_b1.py) and builds its engine for two threads, then
# runs it at two threads (the LSTM stack's streamed run, the LSTM kernel's pipelined
# projection) on the script's input and checks the outputs against its float64 reference.
if(NOT PYTHON OR NOT EXISTS "${PYTHON}")
  message(FATAL_ERROR "no Python for ${SCRIPT} ('${PYTHON}'): test.sh creates .venv with onnx and numpy")
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${MODEL} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed (${rc})")
endif()
execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --saveEngine=${ENGINE} --threads=2 --skipInference
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building ${ENGINE} failed (${rc})")
endif()
execute_process(COMMAND ${ANVIL} --loadEngine=${ENGINE} --threads=2 --loadInputs=X:${MODEL}.X.npy
                        --saveOutputs=${MODEL}.outputs RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "running ${ENGINE} failed (${rc})")
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} --check ${MODEL} ${MODEL}.outputs RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${ENGINE}'s outputs differ from the float64 reference (${rc})")
endif()
