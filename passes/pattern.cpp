// The pattern driver and graph queries.
#include "passes/pattern.h"

#include <algorithm>
#include <map>
#include <unordered_set>

namespace anvil::passes {

int applyPatterns(ir::Graph& g, const std::vector<Pattern>& patterns, std::string* stats, int maxRounds) {
  std::map<std::string, int> counts;
  int total = 0;
  for (int round = 0; round < maxRounds; ++round) {
    bool changed = false;
    for (const Pattern& p : patterns) {
      // Snapshot the anchors; skip nodes removed by earlier rewrites of this sweep.
      std::vector<ir::Node*> anchors;
      for (const auto& n : g.nodes())
        if ((p.anchorOp.empty() || n->op() == p.anchorOp) && n->domain() == p.anchorDomain) anchors.push_back(n.get());
      for (ir::Node* a : anchors) {
        bool alive = false;
        for (const auto& n : g.nodes()) alive = alive || n.get() == a;
        if (!alive) continue;
        if (p.apply(g, *a)) {
          ++counts[p.name];
          ++total;
          changed = true;
        }
      }
      if (changed) g.topoSort();
    }
    if (!changed) break;
  }
  g.removeUnusedValues();
  if (stats) {
    stats->clear();
    for (const auto& [name, c] : counts) *stats += (stats->empty() ? "" : ", ") + name + "=" + std::to_string(c);
  }
  return total;
}

std::vector<ir::Node*> usersOf(const ir::Graph& g, const ir::Value* v) { return g.users(v); }

bool isGraphOutput(const ir::Graph& g, const ir::Value* v) {
  return std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end();
}

bool hasSingleUse(const ir::Graph& g, const ir::Value* v) {
  if (isGraphOutput(g, v)) return false;
  auto users = g.users(v);
  if (users.size() != 1) return false;
  int uses = 0;
  for (const ir::Value* in : users[0]->inputs()) uses += in == v;
  return uses == 1;
}

ir::Node* producerIs(const ir::Value* v, const std::string& op, const std::string& domain) {
  if (!v || !v->producer()) return nullptr;
  ir::Node* p = v->producer();
  return p->op() == op && p->domain() == domain ? p : nullptr;
}

const ir::Tensor* constantOf(const ir::Value* v) { return v ? v->initializer() : nullptr; }

bool scalarConstant(const ir::Value* v, double* out) {
  const ir::Tensor* t = constantOf(v);
  if (!t || t->numel() != 1 || t->dtype() == ir::DataType::kString) return false;
  *out = t->getDouble(0);
  return true;
}

void replaceAndRemove(ir::Graph& g, ir::Value* from, ir::Value* to, const std::vector<ir::Node*>& dead) {
  g.replaceAllUses(from, to);
  for (ir::Node* n : dead) g.removeNode(n);
}

}  // namespace anvil::passes
