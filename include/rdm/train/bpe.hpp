// Learning a CLIP byte-level BPE vocabulary from a text corpus, written in the OpenAI format
// that clip::Tokenizer::load reads (bpe_simple_vocab_16e6.txt.gz: a header line, then one merge
// "a b" per line, gzip). Words are the tokenizer's own pieces (clip::split_pieces of
// clip::clean_text), as byte symbols with "</w>" on the last one; the most frequent adjacent
// pair is merged first (ties: the smaller pair in byte order), until no pair occurs twice or
// `max_merges` is reached. The vocabulary then has 512 + merges + 2 symbols.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace rdm::train {

// Merge lines ("a b") in rank order.
std::vector<std::string> learn_bpe(const std::vector<std::string>& texts, int64_t max_merges = 10000);

// Writes the merges as a gzip vocabulary file (atomically): "#version: 0.2 (rdm train)" then
// one merge per line.
void write_bpe_vocab(const std::filesystem::path& path, const std::vector<std::string>& merges);

}  // namespace rdm::train
