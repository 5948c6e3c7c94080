# Configures and builds the lean runtime with ThreadSanitizer in its own tree and runs
# runtime_threads (8 threads x 200 runs) on an engine built by the normal tree.
# -O1 (ThreadSanitizer's advice: -O1 or -O2) with -g1 (ANVIL_TSAN): this tree is the longest
# build of the suite, and at -O2 -g elementwise.cpp alone compiled 2.6x slower (129 s vs 50 s).
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${BUILD} -G Ninja -DANVIL_TSAN=ON -DANVIL_LEAN_ONLY=ON
                        -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" RESULT_VARIABLE rc)
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
