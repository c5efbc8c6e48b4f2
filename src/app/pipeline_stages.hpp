// The steps of Pipeline::sample (scripts/knn2img.py's main loop), one function each so that
// each can be read and tested on its own (tests/unit/test_pipeline_stages.cpp):
//
//   1. query_text      the text CLIP encodes (the postfix baseline appends the style)
//   2. encode_query    CLIP text or image embedding, L2-normalised
//   3. retrieve_neighbors   k neighbours over the databases by weight, best first
//   4. build_context   c = [query, neighbours]
//   5. sample_batch    seeded noise -> guided sampler
//   6. decode_image    first stage -> uint8 RGB
//   7. request_record / image_record   what reproduces each image
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "rdm/app/image_record.hpp"
#include "rdm/app/pipeline.hpp"
#include "rdm/app/request.hpp"
#include "rdm/image/png.hpp"

namespace rdm::clip {
class QueryEncoder;
}
namespace rdm::ldm {
class LatentDiffusion;
}
namespace rdm::retrieval {
class Database;
}

namespace rdm::stage {

using DbList = std::vector<std::shared_ptr<retrieval::Database>>;

// Thrown from a sampler step when SampleCallbacks::stop is set; Pipeline::sample catches it.
struct Interrupted {};

// 1. The prompt, or for the postfix baseline prompt + " in the style of " + style (the request's
// style, else the first database's name). rdm::Error when there is nothing to encode.
std::string query_text(const SampleRequest& request, const std::vector<std::string>& database_names);

// 2. The query [1, D] float32, unit length: CLIP's embedding of `text`, or of the image prompt
// (preprocessed as the first database was built). rdm::Error when it is not finite (`clip_file`
// names the weights).
torch::Tensor encode_query(const clip::QueryEncoder& encoder, const SampleRequest& request, const std::string& text,
                           const DbList& databases, const std::string& clip_file);

// 3. k neighbours split across the databases by weight (split_k), best first overall; appends
// their records to `records` and returns their float32 embeddings in the same order.
std::vector<torch::Tensor> retrieve_neighbors(const SampleRequest& request, const DbList& databases,
                                              const torch::Tensor& query, std::vector<NeighborRecord>& records);

// 4. c = [query, neighbours / their L2 norm] as [1, 1 + k, D] on `device` in `dtype` (the
// unconditional context is zeros_like(c)).
torch::Tensor build_context(const torch::Tensor& query, const std::vector<torch::Tensor>& neighbors,
                            torch::Device device, torch::Dtype dtype);

// 5. Images b0 .. b0 + B - 1 of the request through the guided sampler: latents [B, C, h, w].
// Image i draws its noise from a CPU generator seeded with seed + first_index + i.
torch::Tensor sample_batch(const ldm::LatentDiffusion& ldm, const SampleRequest& request, const torch::Tensor& c,
                           int64_t b0, int64_t B, int64_t height, int64_t width, const SampleCallbacks& callbacks);

// 6. One latent [1, C, h, w] -> uint8 RGB, floor(255 * clamp((x + 1) / 2, 0, 1)) (knn2img's
// conversion); rdm::Error when the decoded image is not finite.
image::RgbImage decode_image(const ldm::LatentDiffusion& ldm, const torch::Tensor& z, int64_t index, uint64_t seed);

// 7. The databases as recorded (name, folder, weight, share of k, hash, size, CLIP).
std::vector<ImageRecord::Database> database_records(const SampleRequest& request, const DbList& databases,
                                                    bool retrieve);
// The part of the record every image of a request shares: `model` holds the model half
// (Pipeline::describe()); the image adds seed, index and timings (image_record).
ImageRecord request_record(const ImageRecord& model, const SampleRequest& request, const std::string& text,
                           std::vector<ImageRecord::Database> databases, const std::vector<NeighborRecord>& neighbors,
                           bool retrieve, int64_t width, int64_t height);
ImageRecord image_record(const ImageRecord& request_part, std::map<std::string, double> seconds, uint64_t seed,
                         int64_t index);

}  // namespace rdm::stage
