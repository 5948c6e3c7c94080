# A blocked 1x1 convolution and the depthwise convolution that alone reads its output, run as
# one anvil.FusedConvDw step (codegen/layout_selection.h), through the CLI on
# tests/cli/convdw_model.py (blocked layouts forced, so that the regions do not depend on the
# host's timings):
#  - at one thread the two pairs whose intermediate is 1 MiB or more are fused (named
#    "<1x1>+<depthwise>", the blocked kernel f32_conv_dw_nchw<b>c), the smaller pair is not;
#  - at two threads only the pair of 2 MiB or more (1 MiB a thread) is;
#  - --noConvDwFusion keeps every pair apart;
#  - the engines' outputs agree (the fused step makes the same bits as the two nodes; the
#    rest of the engines may time other tactics, so within f32 rounding).
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
execute_process(COMMAND ${PY} ${MODELGEN} ${OUT}/m.onnx ${OUT} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "making the model failed: ${err}")
endif()

function(anvil_build name)
  execute_process(COMMAND ${ANVIL} --onnx=${OUT}/m.onnx --blockedLayouts=always ${ARGN}
                          --loadInputs=x:${OUT}/x.npy,x2:${OUT}/x2.npy --saveOutputs=${OUT}/${name} --dumpLayerInfo
                          --iterations=1 --warmUp=0 --duration=0
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: anvil failed:\n${out}${err}")
  endif()
  set(${name}_out "${out}" PARENT_SCOPE)
endfunction()

anvil_build(with --threads=1)
anvil_build(two --threads=2)
anvil_build(without --threads=1 --noConvDwFusion)

# The layers fused in `text`: exactly the pairs in `want`, each one blocked step.
function(expect_fused text want)
  string(REGEX MATCHALL "[^\n]*\\[anvil.FusedConvDw\\][^\n]*" fused "${text}")
  list(LENGTH fused n)
  list(LENGTH want nw)
  if(NOT n EQUAL nw)
    message(FATAL_ERROR "expected ${nw} anvil.FusedConvDw layers (${want}), got ${n}:\n${text}")
  endif()
  foreach(pair ${want})
    if(NOT text MATCHES "${pair} \\[anvil.FusedConvDw\\] tactic=f32_conv_dw_nchw(16c_14x32__avx512|8c_6x16__avx2)")
      message(FATAL_ERROR "the pair ${pair} is not one fused blocked step:\n${text}")
    endif()
  endforeach()
endfunction()
expect_fused("${with_out}" "expand1\\+dw1;expand2\\+dw2")
expect_fused("${two_out}" "expand1\\+dw1")
if(NOT with_out MATCHES "\n\\[I\\] expand3 \\[" OR NOT with_out MATCHES "\n\\[I\\] dw3 \\[")
  message(FATAL_ERROR "the pair under 1 MiB (expand3, dw3) should stay two layers:\n${with_out}")
endif()
if(without_out MATCHES "FusedConvDw")
  message(FATAL_ERROR "--noConvDwFusion still fused a pair:\n${without_out}")
endif()

execute_process(COMMAND ${PY} -c "
import numpy as np, sys
worst = 0.0
for run in ('with', 'two'):
    for y in ('y', 'y2'):
        a = np.load('${OUT}/' + run + '/' + y + '.npy'); b = np.load('${OUT}/without/' + y + '.npy')
        worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-6)))
print('max rel difference', worst)
sys.exit(0 if worst < 1e-5 else 1)"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "outputs with and without the fusion differ: ${out}${err}")
endif()
message(STATUS "${out}")
