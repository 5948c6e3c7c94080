# A blocked 1x1 convolution and the depthwise convolution that alone reads its output, run as
# one anvil.FusedConvDw step (codegen/layout_selection.h), through the CLI on
# tests/cli/convdw_model.py (blocked layouts forced, so that the regions do not depend on the
# host's timings):
#  - at one thread the two pairs whose intermediate is 768 KiB or more are fused (named
#    "<1x1>+<depthwise>", the blocked kernel f32_conv_dw_nchw<b>c), the smaller pair is not;
#  - at two threads only the pair of 1.5 MiB or more (768 KiB a thread) is;
#  - --noConvDwFusion keeps every pair apart;
#  - the engines' outputs agree (the fused step makes the same bits as the two nodes; the
#    rest of the engines may time other tactics, so within f32 rounding).
include(${CMAKE_CURRENT_LIST_DIR}/generated_model.cmake)
cli_make_model()
set(inputs x:${OUT}/x.npy,x2:${OUT}/x2.npy)
cli_run_model(with ${inputs} --blockedLayouts=always --threads=1)
cli_run_model(two ${inputs} --blockedLayouts=always --threads=2)
cli_run_model(without ${inputs} --blockedLayouts=always --threads=1 --noConvDwFusion)

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
  message(FATAL_ERROR "the pair under 768 KiB (expand3, dw3) should stay two layers:\n${with_out}")
endif()
if(without_out MATCHES "FusedConvDw")
  message(FATAL_ERROR "--noConvDwFusion still fused a pair:\n${without_out}")
endif()

cli_outputs_agree(without "with;two" "y;y2")
