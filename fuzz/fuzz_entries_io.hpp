// Entry points of the weight-file fuzz targets (npy/npz, safetensors, torch zip, the restricted
// unpickler), shared with the corpus replay unit test (tests/unit/test_fuzz_corpus.cpp): each
// feeds one input through the reader exactly as rdm does and lets only rdm::Error escape.
#pragma once
#include <string>
#include <string_view>

#include <torch/types.h>

#include "fuzz_input.hpp"
#include "rdm/runtime/error.hpp"
#include "rdm/formats/npy.hpp"
#include "rdm/formats/pickle.hpp"
#include "rdm/formats/safetensors.hpp"
#include "rdm/formats/torch_zip.hpp"

namespace rdm_fuzz {

inline const std::uint8_t* bytes_of(std::string_view d) { return reinterpret_cast<const std::uint8_t*>(d.data()); }

// .npy from memory and .npz (a zip) from a file.
inline void npy(std::string_view data) {
  try {
    (void)rdm::formats::parse_npy(data, "fuzz.npy").sum();
  } catch (const rdm::Error&) {
  }
  try {
    for (const auto& [k, t] : rdm::formats::read_npz(input_file(bytes_of(data), data.size()))) (void)t.sum();
  } catch (const rdm::Error&) {
  }
}

inline void safetensors(std::string_view data) {
  try {
    auto tf = rdm::formats::read_safetensors(input_file(bytes_of(data), data.size()));
    for (const auto& [k, t] : tf.tensors) (void)t.sum();
  } catch (const rdm::Error&) {
  }
}

// Zip reader + torch zip checkpoint / TorchScript reader.
inline void torch_zip(std::string_view data) {
  try {
    auto tf = rdm::formats::read_torch_zip(input_file(bytes_of(data), data.size()));
    for (const auto& [k, t] : tf.tensors) (void)t.sum();
  } catch (const rdm::Error&) {
  }
}

// The unpickler alone, from memory. Persistent ids resolve to a small float storage so that
// the tensor rebuilders (bounds checks) are exercised too.
inline void pickle(std::string_view data) {
  using namespace rdm::formats::pickle;
  auto pl = [](const Value&, Document& doc) {
    Value* s = doc.make(Kind::Storage);
    s->tensor = torch::arange(16, torch::kFloat32);
    s->storage_key = "0";
    return s;
  };
  Limits lim;
  lim.max_values = 1 << 20;
  try {
    auto doc = unpickle(data, "fuzz.pkl", pl, lim);
    (void)doc->root->repr();
    if (const Value* v = doc->root->get("state_dict")) (void)v->repr();
  } catch (const rdm::Error&) {
  }
}

}  // namespace rdm_fuzz
