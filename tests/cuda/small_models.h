// The small MLP and CNN that the CUDA engine tests (tensor cores, INT8, device I/O) build:
// one definition each, written with tests/onnx_writer.h into the temp directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/onnx_writer.h"

namespace anvil::test {

// x[batch,33] -> MatMul W1[33,70] -> Add b1 -> Relu -> Gemm(W2[17,70]^T, b2) -> y[batch,17]
// (batch < 0: the symbolic "batch").
inline std::string writeSmallMlp(int64_t batch, const std::string& graphName, const std::string& file) {
  OnnxWriter w(graphName);
  w.input("x", {batch, 33});
  w.output("y", {batch, 17});
  w.weight("w1", {33, 70}, 1, 0.3f);
  w.weight("b1", {70}, 2, 0.1f);
  w.weight("w2", {17, 70}, 3, 0.3f);
  w.weight("b2", {17}, 4, 0.1f);
  w.node("MatMul", "fc1", {"x", "w1"}, "h0");
  w.node("Add", "bias1", {"h0", "b1"}, "h1");
  w.node("Relu", "relu1", {"h1"}, "h");
  OnnxWriter::attr(w.node("Gemm", "fc2", {"h", "w2", "b2"}, "y"), "transB", 1);
  return w.save(file);
}

// x[n,3,9,9] -> Conv W1[mid,3,3,3] pad 1 + b1 -> Relu -> Conv W2[out,mid,1,1] -> y[n,out,9,9].
inline std::string writeSmallCnn(int64_t n, int64_t mid, int64_t out, const std::string& graphName,
                                 const std::string& file) {
  OnnxWriter w(graphName);
  w.input("x", {n, 3, 9, 9});
  w.output("y", {n, out, 9, 9});
  w.weight("w1", {mid, 3, 3, 3}, 5, 0.3f);
  w.weight("b1", {mid}, 6, 0.1f);
  w.weight("w2", {out, mid, 1, 1}, 7, 0.3f);
  OnnxWriter::attr(w.node("Conv", "conv1", {"x", "w1", "b1"}, "h0"), "pads", std::vector<int64_t>{1, 1, 1, 1});
  w.node("Relu", "relu1", {"h0"}, "h");
  w.node("Conv", "conv2", {"h", "w2"}, "y");
  return w.save(file);
}

}  // namespace anvil::test
