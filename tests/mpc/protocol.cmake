# The two-party protocol (runtime/mpc/protocol.*, dealer.*, local_transport.cpp) on
# hand-built programs and the compiled digits models, both parties on two threads, against
# the fixed executor.
anvil_test(mpc_protocol_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/protocol_test.cpp ${CMAKE_CURRENT_LIST_DIR}/protocol_model_test.cpp
  LIBS anvil_mpc_protocol anvil_mpc anvil_tools_common)
target_compile_definitions(mpc_protocol_tests PRIVATE ANVIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# --exactTruncation (dealer.h exactLookup): secure == fixed bit for bit, single lookups over
# every shift, MaxPool, the digits MLP and CNN.
anvil_test(mpc_exact_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/exact_test.cpp
  LIBS anvil_mpc_protocol anvil_mpc anvil_tools_common)
target_compile_definitions(mpc_exact_tests PRIVATE ANVIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# The mpc commands with real processes on loopback (tests/mpc/cli_mpc.py): --mode=mpc,
# mpc-dealer, mpc-server in the background, two mpc-clients, compared with --mode=fixed;
# the MLP run also goes through the error cases (foreign or used-up material, a server
# killed or silent mid-run, a client of another build).
set(ANVIL_MPC_MODELS ${PROJECT_SOURCE_DIR}/tests/models/precision)
add_test(NAME mpc_cli_mlp
  COMMAND ${PROJECT_SOURCE_DIR}/.venv/bin/python ${CMAKE_CURRENT_LIST_DIR}/cli_mpc.py --anvil $<TARGET_FILE:anvil_cli>
          --model ${ANVIL_MPC_MODELS}/digits_mlp --shape 16x64 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mpc_mlp --errors)
add_test(NAME mpc_cli_cnn
  COMMAND ${PROJECT_SOURCE_DIR}/.venv/bin/python ${CMAKE_CURRENT_LIST_DIR}/cli_mpc.py --anvil $<TARGET_FILE:anvil_cli>
          --model ${ANVIL_MPC_MODELS}/digits_cnn --shape 16x1x8x8 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mpc_cnn)
# The same with --exactTruncation: secure outputs equal --mode=fixed's byte for byte (the CNN
# at batch 2: its exact material is ~45 MB a run).
add_test(NAME mpc_cli_mlp_exact
  COMMAND ${PROJECT_SOURCE_DIR}/.venv/bin/python ${CMAKE_CURRENT_LIST_DIR}/cli_mpc.py --anvil $<TARGET_FILE:anvil_cli>
          --model ${ANVIL_MPC_MODELS}/digits_mlp --shape 16x64 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mpc_mlp_exact
          --exactTruncation)
add_test(NAME mpc_cli_cnn_exact
  COMMAND ${PROJECT_SOURCE_DIR}/.venv/bin/python ${CMAKE_CURRENT_LIST_DIR}/cli_mpc.py --anvil $<TARGET_FILE:anvil_cli>
          --model ${ANVIL_MPC_MODELS}/digits_cnn --shape 2x1x8x8 --out ${CMAKE_CURRENT_BINARY_DIR}/cli_mpc_cnn_exact
          --exactTruncation)
set_tests_properties(mpc_cli_mlp mpc_cli_cnn mpc_cli_mlp_exact mpc_cli_cnn_exact PROPERTIES TIMEOUT 300)
