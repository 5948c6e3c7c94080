# Configures and builds the lean runtime with ThreadSanitizer in its own tree and runs
# runtime_threads (8 threads x 200 runs) on an engine built by the normal tree, then on
# ENGINE2 (the batch-1 LSTM, 4 threads x 20 runs, each context with two intra-op threads:
# the LSTM stack's streamed run and the LSTM kernel's pipelined projection hand out layers,
# steps and blocks through atomics).
# -O0 with -g1 (the line tables TSan's reports need, file:line per frame): this tree was the
# suite's longest build. ThreadSanitizer advises -O1 or more for the speed of the program,
# and this program is 8 x 200 runs of a tiny engine (under 5 s at -O0); compiling is what
# costs: elementwise.cpp 129 s at -O2 -g, 55 s at -O1 -g1,
# 20 s at -O0 -g1, and the whole test 243 s at -O0 on an idle 2-core machine (the tree at
# -O2 -g and the suite around it: 1010 s).
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${BUILD} -G Ninja -DANVIL_TSAN=ON -DANVIL_LEAN_ONLY=ON
                        -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O0 -g1 -DNDEBUG" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the TSan tree failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD} --target runtime_threads RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the TSan runtime failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env TSAN_OPTIONS=halt_on_error=1:exitcode=66
                        ${BUILD}/tests/runtime/runtime_threads ${ENGINE} 8 200 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "runtime_threads under ThreadSanitizer failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env TSAN_OPTIONS=halt_on_error=1:exitcode=66 ANVIL_NUM_THREADS=2
                        ${BUILD}/tests/runtime/runtime_threads ${ENGINE2} 4 20 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "runtime_threads on ${ENGINE2} under ThreadSanitizer failed (${rc})")
endif()
