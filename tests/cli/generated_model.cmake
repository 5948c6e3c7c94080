# Helpers of the CLI tests whose model a script makes (tests/cli/*_model.py: MODELGEN writes
# OUT/m.onnx and its inputs into OUT; ANVIL, PY and OUT come from tests/CMakeLists.txt).

# OUT emptied, then the model and its inputs made.
function(cli_make_model)
  file(REMOVE_RECURSE ${OUT})
  file(MAKE_DIRECTORY ${OUT})
  execute_process(COMMAND ${PY} ${MODELGEN} ${OUT}/m.onnx ${OUT} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "making the model failed: ${err}")
  endif()
endfunction()

# Builds and runs OUT/m.onnx once with the extra flags (ARGN) on `inputs` (--loadInputs's
# value), its outputs saved into OUT/<name>; the CLI's output, layer info included, in
# <name>_out of the caller. Fails the test if the CLI fails.
function(cli_run_model name inputs)
  execute_process(COMMAND ${ANVIL} --onnx=${OUT}/m.onnx ${ARGN} --loadInputs=${inputs} --saveOutputs=${OUT}/${name}
                          --dumpLayerInfo --iterations=1 --warmUp=0 --duration=0
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: anvil failed:\n${out}${err}")
  endif()
  set(${name}_out "${out}" PARENT_SCOPE)
endfunction()

# The outputs `names` (a list) of each run in `runs` against run `base`: the largest
# difference relative to the base's largest magnitude must stay under 1e-5.
function(cli_outputs_agree base runs names)
  string(REPLACE ";" "','" r "${runs}")
  string(REPLACE ";" "','" n "${names}")
  execute_process(COMMAND ${PY} -c "
import numpy as np, sys
worst = 0.0
for run in ['${r}']:
    for y in ['${n}']:
        a = np.load('${OUT}/' + run + '/' + y + '.npy'); b = np.load('${OUT}/${base}/' + y + '.npy')
        worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-6)))
print('max rel difference', worst)
sys.exit(0 if worst < 1e-5 else 1)"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the outputs of ${runs} differ from ${base}'s: ${out}${err}")
  endif()
  message(STATUS "${out}")
endfunction()
