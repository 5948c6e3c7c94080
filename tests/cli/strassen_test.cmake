# One-level Strassen as a tactic (cpu/tactics/gemm_strassen.h), through the CLI on a two-layer
# MLP (tests/cli/strassen_model.py) whose MatMuls it serves (K >= 256, N >= 256, 64 rows):
#  - by default the f32_gemm_strassen kernels are among each layer's timed candidates (which
#    one wins is the host's timing: the test counts candidates rather than asking for a win);
#  - --noStrassen takes exactly them away (the layer info's candidates= drops by one per
#    vector family the host runs) and no layer then runs one;
#  - the two engines' outputs agree within f32 rounding.
include(${CMAKE_CURRENT_LIST_DIR}/generated_model.cmake)
cli_make_model()
cli_run_model(with x:${OUT}/x.npy)
cli_run_model(without x:${OUT}/x.npy --noStrassen)

# The two layers' candidate counts (fc1 and fc2: MatMul + bias (+ Relu) fused as anvil.FusedGemm).
function(candidates text var)
  string(REGEX MATCHALL "fc[12] [[][^\n]*candidates=[0-9]+" lines "${text}")
  set(counts "")
  foreach(l ${lines})
    string(REGEX MATCH "candidates=([0-9]+)" _ "${l}")
    list(APPEND counts ${CMAKE_MATCH_1})
  endforeach()
  set(${var} "${counts}" PARENT_SCOPE)
endfunction()
candidates("${with_out}" c_with)
candidates("${without_out}" c_without)
list(LENGTH c_with n_with)
if(NOT n_with EQUAL 2)
  message(FATAL_ERROR "expected the two MatMul layers in the layer info, got counts '${c_with}':\n${with_out}")
endif()
# How many Strassen kernels this host has: one per vector family it runs (AVX2 6x16; AVX-512
# 14x32 and 8x32).
execute_process(COMMAND grep -c -w avx512f /proc/cpuinfo OUTPUT_VARIABLE has512 ERROR_QUIET)
execute_process(COMMAND grep -c -w avx2 /proc/cpuinfo OUTPUT_VARIABLE has256 ERROR_QUIET)
set(expect 0)
if(has256 GREATER 0)
  math(EXPR expect "${expect} + 1")
endif()
if(has512 GREATER 0 AND NOT "$ENV{ANVIL_MAX_ISA}" STREQUAL "avx2")
  math(EXPR expect "${expect} + 2")
endif()
foreach(i 0 1)
  list(GET c_with ${i} a)
  list(GET c_without ${i} b)
  math(EXPR diff "${a} - ${b}")
  if(NOT diff EQUAL expect)
    message(FATAL_ERROR "--noStrassen should take ${expect} candidates away from each MatMul, "
                        "got ${a} -> ${b}:\n${with_out}\n--noStrassen:\n${without_out}")
  endif()
endforeach()
if(without_out MATCHES "tactic=f32_gemm_strassen")
  message(FATAL_ERROR "--noStrassen still ran a Strassen kernel:\n${without_out}")
endif()
message(STATUS "candidates per MatMul: ${c_with} -> ${c_without} with --noStrassen")

cli_outputs_agree(without with y)
