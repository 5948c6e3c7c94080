// .npy files (NumPy format 1.0/2.0/3.0): read with dtype and shape from the header,
// write little-endian C-order arrays. Used by --loadInputs and --saveOutputs.
#pragma once

#include <string>

#include "ir/tensor.h"

namespace anvil::tools {

ir::Tensor readNpy(const std::string& path);
void writeNpy(const std::string& path, const ir::Tensor& t);

}  // namespace anvil::tools
