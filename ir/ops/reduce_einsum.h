// Einsum equation parsing, shared by Einsum's shape inference (ir/ops/reduce.cpp) and its
// reference kernel (cpu/kernels/reduce_einsum.cpp), so both read an equation one way.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <vector>

#include "anvil/error.h"

namespace anvil::ir::einsum {

// Label ids: 0..51 for a-z, A-Z; ellipsis dims get ids kEllipsisBase + k, where k counts
// the broadcast ellipsis dims from the left (numpy right-aligns them across operands).
inline constexpr int kEllipsisBase = 52;
inline constexpr int kEllipsisToken = -1;

struct Term {
  std::vector<int> labels;  // letters and at most one kEllipsisToken, as written
  bool hasEllipsis() const { return std::count(labels.begin(), labels.end(), kEllipsisToken) != 0; }
  size_t letters() const { return labels.size() - (hasEllipsis() ? 1 : 0); }
};

struct Equation {
  std::vector<Term> inputs;
  Term output;
  bool explicitOutput = false;
};

inline int labelId(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -2;
}

// Parses "ij,jk->ik", "...ii->...i", "ij,jk" (implicit output). Throws kInvalidModel
// with `what` and the reason on a malformed equation.
inline Equation parse(const std::string& eqRaw, const std::string& what) {
  std::string eq;
  for (char c : eqRaw)
    if (!std::isspace(static_cast<unsigned char>(c))) eq += c;
  auto bad = [&](const std::string& why) -> Equation {
    ANVIL_THROW(ErrorCode::kInvalidModel, what, ": einsum equation '", eqRaw, "': ", why);
  };
  Equation e;
  std::string lhs = eq, rhs;
  size_t arrow = eq.find("->");
  if (arrow != std::string::npos) {
    lhs = eq.substr(0, arrow);
    rhs = eq.substr(arrow + 2);
    e.explicitOutput = true;
    if (rhs.find("->") != std::string::npos) return bad("more than one '->'");
  }
  auto parseTerm = [&](const std::string& s, Term& t) -> bool {
    for (size_t i = 0; i < s.size();) {
      if (s[i] == '.') {
        if (s.compare(i, 3, "...") != 0 || t.hasEllipsis()) return false;
        t.labels.push_back(kEllipsisToken);
        i += 3;
        continue;
      }
      int id = labelId(s[i]);
      if (id < 0) return false;
      t.labels.push_back(id);
      ++i;
    }
    return true;
  };
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    std::string part = lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    Term t;
    if (!parseTerm(part, t)) return bad("bad operand term '" + part + "'");
    e.inputs.push_back(std::move(t));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (e.explicitOutput) {
    if (!parseTerm(rhs, e.output)) return bad("bad output term '" + rhs + "'");
    for (size_t i = 0; i < e.output.labels.size(); ++i)
      for (size_t j = i + 1; j < e.output.labels.size(); ++j)
        if (e.output.labels[i] == e.output.labels[j]) return bad("output repeats a label");
    for (int l : e.output.labels) {
      if (l == kEllipsisToken) {
        bool any = false;
        for (const Term& t : e.inputs) any |= t.hasEllipsis();
        if (!any) return bad("output has '...' but no operand does");
        continue;
      }
      bool found = false;
      for (const Term& t : e.inputs) found |= std::count(t.labels.begin(), t.labels.end(), l) != 0;
      if (!found) return bad("output label does not appear in any operand");
    }
  } else {
    // Implicit output: ellipsis dims first, then labels used exactly once, in ASCII order.
    int count[kEllipsisBase] = {};
    bool anyEllipsis = false;
    for (const Term& t : e.inputs)
      for (int l : t.labels) {
        if (l == kEllipsisToken) anyEllipsis = true;
        else ++count[l];
      }
    if (anyEllipsis) e.output.labels.push_back(kEllipsisToken);
    // ASCII order: 'A'..'Z' (ids 26..51) before 'a'..'z' (ids 0..25).
    for (int l = 26; l < 52; ++l)
      if (count[l] == 1) e.output.labels.push_back(l);
    for (int l = 0; l < 26; ++l)
      if (count[l] == 1) e.output.labels.push_back(l);
  }
  return e;
}

// Replaces each operand's ellipsis by ellipsis label ids given operand ranks; returns the
// number of ellipsis dims E (the output's ellipsis expands to all E of them).
inline int64_t expandEllipsis(Equation& e, const std::vector<int64_t>& ranks, const std::string& what) {
  ANVIL_CHECK(ranks.size() == e.inputs.size(), ErrorCode::kShapeMismatch, what, ": einsum equation has ",
              e.inputs.size(), " operands but the node has ", ranks.size(), " inputs");
  int64_t E = 0;
  for (size_t i = 0; i < e.inputs.size(); ++i) {
    const Term& t = e.inputs[i];
    int64_t letters = int64_t(t.letters());
    if (t.hasEllipsis()) {
      ANVIL_CHECK(ranks[i] >= letters, ErrorCode::kShapeMismatch, what, ": einsum operand ", i, " has rank ",
                  ranks[i], " but its term needs at least ", letters, " dims");
      E = std::max(E, ranks[i] - letters);
    } else {
      ANVIL_CHECK(ranks[i] == letters, ErrorCode::kShapeMismatch, what, ": einsum operand ", i, " has rank ",
                  ranks[i], " but its term has ", letters, " labels");
    }
  }
  auto expand = [&](Term& t, int64_t e_i) {
    std::vector<int> out;
    for (int l : t.labels) {
      if (l != kEllipsisToken) {
        out.push_back(l);
        continue;
      }
      for (int64_t k = E - e_i; k < E; ++k) out.push_back(kEllipsisBase + int(k));
    }
    t.labels = std::move(out);
  };
  for (size_t i = 0; i < e.inputs.size(); ++i)
    if (e.inputs[i].hasEllipsis()) expand(e.inputs[i], ranks[i] - int64_t(e.inputs[i].letters()));
  expand(e.output, E);
  return E;
}

}  // namespace anvil::ir::einsum
