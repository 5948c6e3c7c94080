// .npy files (NumPy format 1.0/2.0/3.0): read with dtype and shape from the header,
// write little-endian C-order arrays (strings as fixed-width unicode; bf16, f8 and f4
// widened to f32, 4-bit integers to 8-bit).
// Used by --loadInputs and --saveOutputs.
#pragma once

#include <string>

#include "ir/tensor.h"

namespace anvil::tools {

ir::Tensor readNpy(const std::string& path);
void writeNpy(const std::string& path, const ir::Tensor& t);

// The file --saveOutputs writes for a value and --loadInputs / --calibData look for:
// its name with [^A-Za-z0-9._-] replaced by '_', plus ".npy".
std::string npyFileName(const std::string& valueName);

}  // namespace anvil::tools
