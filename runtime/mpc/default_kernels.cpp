// defaultKernels(): the protocol's and the dealer's ring kernels bound to runtime/mpc/ring_ops
// (the fixed executor's own kernels, so secure and fixed runs agree bit for bit).
#include "anvil/error.h"
#include "runtime/mpc/dealer.h"

namespace anvil::mpc {

// TODO(mpc-protocol): bind runtime/mpc/ring_ops once it is merged.
const RingKernels& defaultKernels() {
  static const RingKernels k{
      [](const Program&, const Step&, const std::vector<Ring>&, const std::vector<Ring>&,
         const std::vector<Ring>&) -> std::vector<Ring> {
        ANVIL_THROW(ErrorCode::kInternal, "mpc: ring kernels not linked");
      },
      [](const Program&, const Step&, const std::vector<Ring>&, const std::vector<Ring>&) -> std::vector<Ring> {
        ANVIL_THROW(ErrorCode::kInternal, "mpc: ring kernels not linked");
      },
      [](const Program&, const Step&, const std::vector<const std::vector<Ring>*>&) -> std::vector<Ring> {
        ANVIL_THROW(ErrorCode::kInternal, "mpc: ring kernels not linked");
      }};
  return k;
}

}  // namespace anvil::mpc
