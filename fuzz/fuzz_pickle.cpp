// libFuzzer target: the restricted unpickler alone, from memory. Persistent ids resolve to a
// small float storage so that the tensor rebuilders (bounds checks) are exercised too.
#include <torch/types.h>

#include "rdm/error.hpp"
#include "rdm/io/pickle.hpp"

using namespace rdm::io::pickle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto pl = [](const Value&, Document& doc) {
    Value* s = doc.make(Kind::Storage);
    s->tensor = torch::arange(16, torch::kFloat32);
    s->storage_key = "0";
    return s;
  };
  Limits lim;
  lim.max_values = 1 << 20;
  try {
    auto doc = unpickle(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.pkl", pl, lim);
    (void)doc->root->repr();
    if (const Value* v = doc->root->get("state_dict")) (void)v->repr();
  } catch (const rdm::Error&) {
  }
  return 0;
}
