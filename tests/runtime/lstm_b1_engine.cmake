# Writes the batch-1 LSTM model (make_lstm_b1.py) and builds its engine for two threads.
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
