// What `rdm sample`, `rdm sweep` and `rdm demo` write: PNGs with their parameters (text
// chunks + a sidecar JSON), never overwriting unless asked; the reference's image grid
// (torchvision make_grid as knn2img calls it); and an HTML gallery.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "rdm/app/image_record.hpp"
#include "rdm/image/png.hpp"

namespace rdm {

// torchvision.utils.make_grid(nrow, padding=2, pad_value=0) on uint8 images of one size:
// columns = min(nrow, n), rows = ceil(n / columns), image k at row k / columns, column
// k % columns; a single image is returned as is (no padding), as the reference.
image::RgbImage make_grid(const std::vector<image::RgbImage>& images, int64_t nrow, int64_t padding = 2,
                       uint8_t pad_value = 0);

// Creates `dir` if needed and checks that files can be created in it (rdm::Error otherwise).
void ensure_writable_dir(const std::filesystem::path& dir);

// "A lighthouse, in a storm!" -> "a-lighthouse-in-a-storm" (ASCII letters/digits, <= max chars).
std::string slugify(const std::string& text, size_t max_chars = 48);

// The next free "NNNNN-<slug>-<seed>.png" in dir: NNNNN counts up from the number of files
// already named NNNNN-*.png (knn2img's base_count), skipping names that exist. With
// overwrite, numbering starts at `start` (0) whether or not files exist.
std::filesystem::path next_image_path(const std::filesystem::path& dir, const std::string& slug, uint64_t seed,
                                      bool overwrite, int64_t start = 0);

// Writes the PNG (text chunks `parameters` and `rdm`) and, if sidecar, <stem>.json, both
// atomically. Refuses to replace an existing file unless overwrite.
// The PNG's record leaves out the timings under "seconds", which change from run to run,
// so that the same command gives byte-identical PNGs; the sidecar has them and the file
// name. png_timings puts the timings in the PNG too.
void write_image_with_record(const std::filesystem::path& png, const image::RgbImage& image,
                             const ImageRecord& record, bool sidecar, bool overwrite, bool png_timings = false);

// A contact sheet of an image's neighbours: their source images (where the database knows
// them), captioned "#rank score\ndatabase label". Atomic.
void write_neighbor_sheet(const std::filesystem::path& sheet, const std::vector<NeighborRecord>& neighbors);

// index.html listing entries {file (relative to the html), prompt, text, mode, seed, scale,
// databases [names], neighbors [{database, id, score, path, label}], contact_sheet (optional)},
// grouped in a table with the prompt, style, seed and neighbours of each image. Atomic.
void write_gallery(const std::filesystem::path& html, const std::string& title,
                   const std::vector<nlohmann::json>& entries);

}  // namespace rdm
