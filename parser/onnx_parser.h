// ONNX → IR. Reads a .onnx file (with external-data side files), imports every node
// through the importer of its op and opset, infers shapes, and names the node in every
// error. No protobuf type crosses this header.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::parser {

// Newest and oldest default-domain opsets anvil imports.
constexpr int kMinOpset = 1;
constexpr int kMaxOpset = 22;

struct ParseOptions {
  bool inferShapes = true;  // run ir::inferShapes after import
};

// Parses a model file; external data is read relative to the file's directory.
ir::Model parseOnnxFile(const std::string& path, const ParseOptions& options = {});
// Parses serialized bytes; `baseDir` resolves external data ("" = no external data).
ir::Model parseOnnxBytes(const std::string& bytes, const std::string& baseDir,
                         const ParseOptions& options = {});

// One node anvil cannot import, found without building anything.
struct SupportIssue {
  std::string node;    // node name (or "#index" when unnamed)
  std::string op;
  std::string domain;
  int opset = 0;
  std::string reason;
  std::string str() const;
};
// Lists every unsupported node of a model (subgraphs included). Throws only when the file
// itself cannot be read or decoded.
std::vector<SupportIssue> checkSupport(const std::string& path);

// Reads a serialized TensorProto (the ONNX test-data .pb files).
ir::Tensor loadTensorProto(const std::string& path);
// Serializes a tensor as a TensorProto (raw_data), for tools and tests.
std::string serializeTensorProto(const ir::Tensor& t, const std::string& name);

// The importer table as data, for docs/operators.md: op, domain, opset range.
struct ImporterInfo {
  std::string op, domain;
  int sinceVersion, untilVersion;
};
std::vector<ImporterInfo> importerTable();

}  // namespace anvil::parser
