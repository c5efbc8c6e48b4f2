// Selftest kinds (clip). Not implemented yet: reported as skipped.
#include "rdm/error.hpp"
#include "selftest/kinds.hpp"

namespace rdm::selftest {
void run_tokenize(const Case&, Report&) { throw Unsupported("kind 'tokenize' is not implemented yet"); }
void run_clip_text(const Case&, Report&) { throw Unsupported("kind 'clip_text' is not implemented yet"); }
void run_clip_image(const Case&, Report&) { throw Unsupported("kind 'clip_image' is not implemented yet"); }
void run_clip_logits(const Case&, Report&) { throw Unsupported("kind 'clip_logits' is not implemented yet"); }
void run_clip_preprocess(const Case&, Report&) { throw Unsupported("kind 'clip_preprocess' is not implemented yet"); }
}  // namespace rdm::selftest
