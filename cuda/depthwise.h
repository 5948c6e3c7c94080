// The direct depthwise convolution of the CUDA backend (cuda/kernels/depthwise.cuh): its
// checked launcher on a DeviceRuntime, over the same descriptor as launchConv2d. No CUDA
// header here.
#pragma once

#include <string>

#include "cuda/linear.h"

namespace anvil::cuda {

// "f32_depthwise_conv2d_direct_block256".
std::string depthwiseConv2dKernelName();

// y = clip(act(conv2d(x, weight) + bias + z)) for a depthwise layer: desc.groups == desc.c ==
// desc.k (weight [c, 1, r, s]); every other field as for launchConv2d. Asynchronous on
// `stream`; kInvalidArgument naming the kernel and the field for a bad descriptor, before
// anything is queued; nothing is launched when y is empty.
void launchDepthwiseConv2d(DeviceRuntime& runtime, Stream stream, const Conv2dDesc& desc);

}  // namespace anvil::cuda
