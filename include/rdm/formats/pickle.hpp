// A restricted Python unpickler (protocols 0-5, the opcodes torch.save and torch.jit.save
// emit). It never executes anything: the only callables it evaluates are a fixed list of
// tensor rebuilders (torch._utils._rebuild_tensor_v2, _rebuild_parameter, ...) and
// collections.OrderedDict; every other GLOBAL becomes an opaque Global value, and REDUCE /
// NEWOBJ / BUILD on it an opaque Object holding the arguments and state. Every read is
// bounds-checked (stack underflow, memo indices, lengths, nesting, sizes).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace rdm::formats::pickle {

enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Set, Global, Object, Tensor, Storage };
const char* kind_name(Kind k);

// One unpickled value. Values live in a Document's arena and point at each other with raw
// pointers (pickles may be cyclic through the memo).
struct Value {
  Kind kind = Kind::None;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;                                 // Str, Bytes; Global/Object: "module.name"
  std::vector<Value*> items;                     // List, Tuple, Set; Object: constructor args
  std::vector<std::pair<Value*, Value*>> dict;   // Dict (insertion order); Object: SETITEMS
  Value* state = nullptr;                        // Object, Dict: BUILD state
  torch::Tensor tensor;                          // Tensor; Storage: a 1-D tensor of its elements
  std::string storage_key;                       // Storage: record key

  bool is_scalar() const;                   // None, Bool, Int, Float, Str
  std::string repr(int depth = 0) const;    // short Python-like text, for messages and metadata
  // Dict/Object-state member with a string key; nullptr when absent.
  const Value* get(std::string_view key) const;
};

// Resolves a persistent id (the tuple of BINPERSID) to a Storage value.
using PersistentLoad = std::function<Value*(const Value& pid, class Document& doc)>;

class Document {
 public:
  Value* root = nullptr;
  Value* make(Kind k);
  std::size_t size() const { return arena_.size(); }

 private:
  std::vector<std::unique_ptr<Value>> arena_;
};

struct Limits {
  std::size_t max_values = std::size_t(1) << 22;   // values allocated (~150 bytes each)
  std::size_t max_memo = std::size_t(1) << 22;     // memo entries
  std::size_t max_tensor_dims = 64;
};

// Unpickles `data`; `name` (file/member) is used in every error message. Throws rdm::Error.
std::unique_ptr<Document> unpickle(std::string_view data, const std::string& name,
                                   const PersistentLoad& persistent_load, const Limits& limits = {});

// torch dtype of a storage class name ("torch.FloatStorage") or dtype global ("torch.float32").
// Returns false when unknown.
bool storage_dtype(const std::string& global, torch::Dtype& out);

}  // namespace rdm::formats::pickle
