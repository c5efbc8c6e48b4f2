// Restricted unpickler for torch.save / torch.jit.save pickles (see rdm/io/pickle.hpp).
// Opcode semantics follow CPython's Lib/pickle.py (_Unpickler); nothing is ever imported or
// called: GLOBALs are names, REDUCE on a name that is not a known tensor rebuilder yields an
// opaque Object.
#include "rdm/formats/pickle.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <unordered_map>

#include "rdm/runtime/error.hpp"

namespace rdm::formats::pickle {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Set: return "set";
    case Kind::Global: return "global";
    case Kind::Object: return "object";
    case Kind::Tensor: return "tensor";
    case Kind::Storage: return "storage";
  }
  return "?";
}

bool Value::is_scalar() const {
  return kind == Kind::None || kind == Kind::Bool || kind == Kind::Int || kind == Kind::Float || kind == Kind::Str;
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s.substr(0, 200)) {
    if (c == '\'' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
      continue;
    }
    out += c;
  }
  if (s.size() > 200) out += "...";
  return out + "'";
}
}  // namespace

std::string Value::repr(int depth) const {
  constexpr std::size_t kMaxItems = 8;
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return b ? "True" : "False";
    case Kind::Int: return std::to_string(i);
    case Kind::Float: {
      if (std::isnan(f)) return "nan";
      if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
      std::string r = fmt::format("{}", f);
      if (r.find_first_of(".en") == std::string::npos) r += ".0";
      return r;
    }
    case Kind::Str: return depth == 0 ? s : quote(s);
    case Kind::Bytes: return fmt::format("<{} bytes>", s.size());
    case Kind::Global: return "<class " + s + ">";
    case Kind::Object: return "<" + s + " object>";
    case Kind::Storage: return fmt::format("<storage '{}' {} x {}>", storage_key, tensor.numel(),
                                           c10::toString(tensor.scalar_type()));
    case Kind::Tensor:
      return fmt::format("tensor({}, [{}])", c10::toString(tensor.scalar_type()), fmt::join(tensor.sizes(), ", "));
    case Kind::List:
    case Kind::Tuple:
    case Kind::Set: {
      const char* open = kind == Kind::List ? "[" : kind == Kind::Tuple ? "(" : "{";
      const char* close = kind == Kind::List ? "]" : kind == Kind::Tuple ? ")" : "}";
      if (depth > 3) return std::string(open) + "..." + close;
      std::string r = open;
      for (std::size_t k = 0; k < items.size() && k < kMaxItems; ++k) r += (k ? ", " : "") + items[k]->repr(depth + 1);
      if (items.size() > kMaxItems) r += ", ...";
      if (kind == Kind::Tuple && items.size() == 1) r += ",";
      return r + close;
    }
    case Kind::Dict: {
      if (depth > 3) return "{...}";
      std::string r = "{";
      for (std::size_t k = 0; k < dict.size() && k < kMaxItems; ++k)
        r += (k ? ", " : "") + dict[k].first->repr(depth + 1) + ": " + dict[k].second->repr(depth + 1);
      if (dict.size() > kMaxItems) r += ", ...";
      return r + "}";
    }
  }
  return "?";
}

const Value* Value::get(std::string_view key) const {
  if (kind != Kind::Dict && kind != Kind::Object) return nullptr;
  // Python semantics: the last assignment of a key wins. Objects: items set by SETITEMS
  // (dict subclasses such as Lightning's AttributeDict), then BUILD state attributes.
  for (auto it = dict.rbegin(); it != dict.rend(); ++it)
    if (it->first->kind == Kind::Str && it->first->s == key) return it->second;
  if (kind == Kind::Object && state && state->kind == Kind::Dict) return state->get(key);
  return nullptr;
}

Value* Document::make(Kind k) {
  arena_.push_back(std::make_unique<Value>());
  arena_.back()->kind = k;
  return arena_.back().get();
}

bool storage_dtype(const std::string& g, torch::Dtype& out) {
  static const std::pair<const char*, torch::Dtype> table[] = {
      {"torch.FloatStorage", torch::kFloat32},  {"torch.float32", torch::kFloat32},  {"torch.float", torch::kFloat32},
      {"torch.DoubleStorage", torch::kFloat64}, {"torch.float64", torch::kFloat64},  {"torch.double", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},   {"torch.float16", torch::kFloat16},  {"torch.half", torch::kFloat16},
      {"torch.BFloat16Storage", torch::kBFloat16}, {"torch.bfloat16", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},     {"torch.int64", torch::kInt64},      {"torch.long", torch::kInt64},
      {"torch.IntStorage", torch::kInt32},      {"torch.int32", torch::kInt32},      {"torch.int", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},    {"torch.int16", torch::kInt16},      {"torch.short", torch::kInt16},
      {"torch.CharStorage", torch::kInt8},      {"torch.int8", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},     {"torch.uint8", torch::kUInt8},
      {"torch.BoolStorage", torch::kBool},      {"torch.bool", torch::kBool},
      {"torch.ComplexFloatStorage", torch::kComplexFloat},   {"torch.complex64", torch::kComplexFloat},
      {"torch.ComplexDoubleStorage", torch::kComplexDouble}, {"torch.complex128", torch::kComplexDouble},
      // torch >= 2.0 untyped storages hold bytes; _rebuild_tensor_v3 gives the dtype.
      {"torch.UntypedStorage", torch::kUInt8},  {"torch.storage.UntypedStorage", torch::kUInt8},
      {"torch.storage._UntypedStorage", torch::kUInt8}, {"torch._UntypedStorage", torch::kUInt8},
  };
  for (const auto& [name, dt] : table)
    if (g == name) {
      out = dt;
      return true;
    }
  return false;
}

namespace {

class Unpickler {
 public:
  Unpickler(std::string_view data, const std::string& name, const PersistentLoad& pl, const Limits& lim,
            Document& doc)
      : d_(data), name_(name), pl_(pl), lim_(lim), doc_(doc) {}

  Value* run();

 private:
  std::string_view d_;
  std::size_t p_ = 0, op_pos_ = 0;
  const std::string& name_;
  const PersistentLoad& pl_;
  const Limits& lim_;
  Document& doc_;
  std::vector<Value*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Value*> memo_;

  template <typename... Args>
  [[noreturn]] void err(fmt::format_string<Args...> f, Args&&... args) {
    fail("'{}': invalid or unsupported pickle (at byte {}): {}", name_, op_pos_,
         fmt::format(f, std::forward<Args>(args)...));
  }
  const std::uint8_t* take(std::uint64_t n) {
    if (n > d_.size() - p_) err("truncated: needs {} more bytes, {} left", n, d_.size() - p_);
    const auto* r = reinterpret_cast<const std::uint8_t*>(d_.data() + p_);
    p_ += static_cast<std::size_t>(n);
    return r;
  }
  std::uint64_t le(int n) {
    const std::uint8_t* b = take(n);
    std::uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | b[k];
    return v;
  }
  std::string line() {
    const std::size_t max = 4096;
    std::size_t e = d_.find('\n', p_);
    if (e == std::string_view::npos) err("truncated: line without newline");
    if (e - p_ > max) err("text line longer than {} bytes", max);
    std::string r(d_.substr(p_, e - p_));
    p_ = e + 1;
    return r;
  }
  Value* make(Kind k) {
    if (doc_.size() >= lim_.max_values) err("more than {} values", lim_.max_values);
    return doc_.make(k);
  }
  Value* make_int(std::int64_t v) {
    Value* x = make(Kind::Int);
    x->i = v;
    return x;
  }
  Value* make_str(Kind k, std::uint64_t n) {
    const std::uint8_t* b = take(n);
    Value* x = make(k);
    x->s.assign(reinterpret_cast<const char*>(b), static_cast<std::size_t>(n));
    return x;
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) { stack_.push_back(v); }
  Value* pop() {
    if (stack_.size() <= floor()) err("stack underflow");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) err("stack underflow");
    return stack_.back();
  }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) err("no MARK on the stack");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(std::uint64_t idx) {
    Value* v = top();
    if (memo_.size() >= lim_.max_memo && !memo_.count(idx)) err("more than {} memo entries", lim_.max_memo);
    memo_[idx] = v;
  }
  void memo_get(std::uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) err("memo index {} was never stored", idx);
    push(it->second);
  }
  std::int64_t parse_int(const std::string& s) {
    std::string t = s;
    if (!t.empty() && t.back() == 'L') t.pop_back();
    if (t.empty()) err("empty integer");
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(t.c_str(), &end, 10);
    if (errno || end != t.c_str() + t.size()) err("integer '{}' out of range or malformed", s.substr(0, 40));
    return v;
  }
  Value* long_bytes(std::uint64_t n) {
    const std::uint8_t* b = take(n);
    if (n > 8) {  // beyond int64: kept as an opaque value
      Value* x = make(Kind::Object);
      x->s = "builtins.int";
      return x;
    }
    std::uint64_t v = 0;
    for (std::uint64_t k = n; k-- > 0;) v = (v << 8) | b[k];
    if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~std::uint64_t(0) << (8 * n);  // sign-extend
    return make_int(static_cast<std::int64_t>(v));
  }
  Value* seq(Kind k, std::vector<Value*> items) {
    Value* x = make(k);
    x->items = std::move(items);
    return x;
  }
  void set_items(Value* target, const std::vector<Value*>& kv) {
    if (kv.size() % 2) err("SETITEMS with an odd number of items");
    if (target->kind != Kind::Dict && target->kind != Kind::Object)
      err("SETITEM on a {}", kind_name(target->kind));
    for (std::size_t k = 0; k < kv.size(); k += 2) target->dict.emplace_back(kv[k], kv[k + 1]);
  }
  void append_items(Value* target, const std::vector<Value*>& items) {
    if (target->kind != Kind::List && target->kind != Kind::Object && target->kind != Kind::Set)
      err("APPEND on a {}", kind_name(target->kind));
    target->items.insert(target->items.end(), items.begin(), items.end());
  }
  Value* make_global(std::string module, std::string name) {
    if (module.empty() || name.empty() || module.size() > 256 || name.size() > 256) err("malformed GLOBAL");
    Value* g = make(Kind::Global);
    g->s = module + "." + name;
    return g;
  }
  Value* instantiate(Value* cls, std::vector<Value*> args) {
    if (cls->kind != Kind::Global) err("instantiating a {} (not a class)", kind_name(cls->kind));
    if (cls->s == "collections.OrderedDict" || cls->s == "builtins.dict") return make(Kind::Dict);
    Value* o = make(Kind::Object);
    o->s = cls->s;
    o->items = std::move(args);
    return o;
  }
  Value* call(Value* fn, Value* args);
  Value* rebuild_tensor(const std::vector<Value*>& a, std::optional<torch::Dtype> view_dtype);
  std::int64_t as_int(const Value* v, const char* what) {
    if (v->kind != Kind::Int) err("{} is a {}, expected an int", what, kind_name(v->kind));
    return v->i;
  }
};

Value* Unpickler::rebuild_tensor(const std::vector<Value*>& a, std::optional<torch::Dtype> view_dtype) {
  if (a.size() < 4) err("tensor rebuild with {} arguments", a.size());
  const Value* st = a[0];
  if (st->kind != Kind::Storage) err("tensor rebuild from a {} (expected a storage)", kind_name(st->kind));
  torch::Tensor storage = st->tensor;
  if (view_dtype && *view_dtype != storage.scalar_type()) {
    const std::int64_t isz = static_cast<std::int64_t>(c10::elementSize(*view_dtype));
    if (storage.scalar_type() != torch::kUInt8 || storage.numel() % isz ||
        reinterpret_cast<std::uintptr_t>(storage.data_ptr()) % isz)
      err("storage '{}' cannot be viewed as {}", st->storage_key, c10::toString(*view_dtype));
    storage = storage.view(*view_dtype);
  }
  const std::int64_t offset = as_int(a[1], "storage offset");
  const Value* size = a[2];
  const Value* stride = a[3];
  if ((size->kind != Kind::Tuple && size->kind != Kind::List) || (stride->kind != Kind::Tuple && stride->kind != Kind::List))
    err("tensor size/stride are not tuples");
  if (size->items.size() != stride->items.size()) err("tensor size and stride have different lengths");
  if (size->items.size() > lim_.max_tensor_dims) err("tensor with {} dimensions", size->items.size());
  if (offset < 0) err("negative storage offset {}", offset);
  std::vector<std::int64_t> sz, sd;
  const std::int64_t kMax = std::int64_t(1) << 62;
  std::int64_t numel = 1, last = offset;
  for (std::size_t k = 0; k < size->items.size(); ++k) {
    const std::int64_t n = as_int(size->items[k], "tensor size"), s = as_int(stride->items[k], "tensor stride");
    if (n < 0 || s < 0 || n > kMax || s > kMax) err("tensor size {} / stride {} out of range", n, s);
    sz.push_back(n);
    sd.push_back(s);
    if (n == 0) numel = 0;
    else if (numel) {
      if (numel > kMax / n) err("tensor of impossible size");
      numel *= n;
    }
  }
  if (numel == 0) {
    Value* t = make(Kind::Tensor);
    t->tensor = torch::empty(sz, storage.options());
    return t;
  }
  for (std::size_t k = 0; k < sz.size(); ++k) {
    // last += (n-1)*stride, overflow-checked
    const std::int64_t n1 = sz[k] - 1;
    if (sd[k] && n1 > (kMax - last) / sd[k]) err("tensor extent overflows");
    last += n1 * sd[k];
  }
  if (last >= storage.numel())
    err("tensor (offset {}, size [{}], stride [{}]) reaches element {} of storage '{}' which has {} elements", offset,
        fmt::join(sz, ","), fmt::join(sd, ","), last, st->storage_key, storage.numel());
  Value* t = make(Kind::Tensor);
  t->tensor = storage.as_strided(sz, sd, offset);
  return t;
}

Value* Unpickler::call(Value* fn, Value* args) {
  if (fn->kind != Kind::Global) err("REDUCE on a {} (not a callable name)", kind_name(fn->kind));
  if (args->kind != Kind::Tuple) err("REDUCE arguments are a {}, expected a tuple", kind_name(args->kind));
  const std::string& f = fn->s;
  const auto& a = args->items;
  if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor")
    return rebuild_tensor(a, std::nullopt);
  if (f == "torch._utils._rebuild_tensor_v3") {
    if (a.size() < 7 || a[6]->kind != Kind::Global) err("_rebuild_tensor_v3 without a dtype");
    torch::Dtype dt;
    if (!storage_dtype(a[6]->s, dt)) err("unknown dtype {}", a[6]->s);
    return rebuild_tensor(a, dt);
  }
  if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || a[0]->kind != Kind::Tensor) err("{} without a tensor", f);
    return a[0];
  }
  if (f == "torch._tensor._rebuild_from_type_v2" || f == "torch._tensor._rebuild_from_type") {
    if (a.size() < 3) err("{} with {} arguments", f, a.size());
    return call(a[0], a[2]);
  }
  if (f == "collections.OrderedDict" || f == "builtins.dict") {
    Value* d = make(Kind::Dict);
    if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) {
      for (Value* kv : a[0]->items) {
        if ((kv->kind != Kind::Tuple && kv->kind != Kind::List) || kv->items.size() != 2)
          err("OrderedDict argument is not a list of pairs");
        d->dict.emplace_back(kv->items[0], kv->items[1]);
      }
    }
    return d;
  }
  if (f == "torch.Size" || f == "builtins.tuple") {
    if (a.size() == 1 && (a[0]->kind == Kind::Tuple || a[0]->kind == Kind::List)) return seq(Kind::Tuple, a[0]->items);
  }
  if (f == "builtins.set" || f == "builtins.frozenset") {
    if (a.empty()) return make(Kind::Set);
    if (a.size() == 1 && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple)) return seq(Kind::Set, a[0]->items);
  }
  // Anything else: an opaque placeholder remembering what would have been called.
  Value* o = make(Kind::Object);
  o->s = f;
  o->items = a;
  return o;
}

Value* Unpickler::run() {
  while (true) {
    op_pos_ = p_;
    const std::uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const int v = *take(1);
        if (v > 5) err("pickle protocol {} is newer than 5", v);
        break;
      }
      case 0x95: take(8); break;  // FRAME (a size hint only)
      case '.': {                 // STOP
        Value* v = pop();
        return v;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case 'N': push(make(Kind::None)); break;
      case 0x88:
      case 0x89: {
        Value* v = make(Kind::Bool);
        v->b = op == 0x88;
        push(v);
        break;
      }
      case 'I': {  // INT (protocol 0; "01"/"00" are booleans)
        const std::string s = line();
        if (s == "01" || s == "00") {
          Value* v = make(Kind::Bool);
          v->b = s == "01";
          push(v);
        } else {
          push(make_int(parse_int(s)));
        }
        break;
      }
      case 'L': push(make_int(parse_int(line()))); break;  // LONG (text)
      case 'J': push(make_int(static_cast<std::int32_t>(le(4)))); break;
      case 'K': push(make_int(static_cast<std::int64_t>(le(1)))); break;
      case 'M': push(make_int(static_cast<std::int64_t>(le(2)))); break;
      case 0x8a: push(long_bytes(le(1))); break;  // LONG1
      case 0x8b: {                                // LONG4
        const std::int32_t n = static_cast<std::int32_t>(le(4));
        if (n < 0) err("LONG4 with a negative length");
        push(long_bytes(static_cast<std::uint64_t>(n)));
        break;
      }
      case 'F': {  // FLOAT (text)
        const std::string s = line();
        char* end = nullptr;
        Value* v = make(Kind::Float);
        v->f = std::strtod(s.c_str(), &end);
        if (s.empty() || end != s.c_str() + s.size()) err("malformed float");
        push(v);
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const std::uint8_t* b = take(8);
        std::uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];
        Value* v = make(Kind::Float);
        std::memcpy(&v->f, &bits, 8);
        push(v);
        break;
      }
      case 'S': {  // STRING (text repr)
        std::string s = line();
        if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front()) err("malformed STRING");
        Value* v = make(Kind::Str);
        v->s = s.substr(1, s.size() - 2);
        push(v);
        break;
      }
      case 'V': {  // UNICODE (text, raw-unicode-escape; kept verbatim)
        Value* v = make(Kind::Str);
        v->s = line();
        push(v);
        break;
      }
      case 'T': {  // BINSTRING
        const std::int32_t n = static_cast<std::int32_t>(le(4));
        if (n < 0) err("BINSTRING with a negative length");
        push(make_str(Kind::Str, static_cast<std::uint64_t>(n)));
        break;
      }
      case 'U': push(make_str(Kind::Str, le(1))); break;     // SHORT_BINSTRING
      case 'X': push(make_str(Kind::Str, le(4))); break;     // BINUNICODE
      case 0x8c: push(make_str(Kind::Str, le(1))); break;    // SHORT_BINUNICODE
      case 0x8d: push(make_str(Kind::Str, le(8))); break;    // BINUNICODE8
      case 'B': push(make_str(Kind::Bytes, le(4))); break;   // BINBYTES
      case 'C': push(make_str(Kind::Bytes, le(1))); break;   // SHORT_BINBYTES
      case 0x8e: push(make_str(Kind::Bytes, le(8))); break;  // BINBYTES8
      case 0x96: push(make_str(Kind::Bytes, le(8))); break;  // BYTEARRAY8
      case ')': push(make(Kind::Tuple)); break;
      case 't': push(seq(Kind::Tuple, pop_mark())); break;
      case 0x85: {
        Value* a = pop();
        push(seq(Kind::Tuple, {a}));
        break;
      }
      case 0x86: {
        Value* b = pop();
        Value* a = pop();
        push(seq(Kind::Tuple, {a, b}));
        break;
      }
      case 0x87: {
        Value* c = pop();
        Value* b = pop();
        Value* a = pop();
        push(seq(Kind::Tuple, {a, b, c}));
        break;
      }
      case ']': push(make(Kind::List)); break;
      case 'l': push(seq(Kind::List, pop_mark())); break;
      case 'a': {
        Value* v = pop();
        append_items(top(), {v});
        break;
      }
      case 'e': {
        auto items = pop_mark();
        append_items(top(), items);
        break;
      }
      case '}': push(make(Kind::Dict)); break;
      case 'd': {
        auto items = pop_mark();
        Value* d = make(Kind::Dict);
        set_items(d, items);
        push(d);
        break;
      }
      case 's': {
        Value* v = pop();
        Value* k = pop();
        set_items(top(), {k, v});
        break;
      }
      case 'u': {
        auto items = pop_mark();
        set_items(top(), items);
        break;
      }
      case 0x8f: push(make(Kind::Set)); break;  // EMPTY_SET
      case 0x90: {                              // ADDITEMS
        auto items = pop_mark();
        Value* s = top();
        if (s->kind != Kind::Set) err("ADDITEMS on a {}", kind_name(s->kind));
        s->items.insert(s->items.end(), items.begin(), items.end());
        break;
      }
      case 0x91: push(seq(Kind::Set, pop_mark())); break;  // FROZENSET
      case '0':                                            // POP
        if (stack_.size() > floor()) stack_.pop_back();
        else pop_mark();
        break;
      case '1': pop_mark(); break;  // POP_MARK
      case '2': push(top()); break;  // DUP
      case 'p': memo_put(static_cast<std::uint64_t>(parse_int(line()))); break;
      case 'q': memo_put(le(1)); break;
      case 'r': memo_put(le(4)); break;
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'g': memo_get(static_cast<std::uint64_t>(parse_int(line()))); break;
      case 'h': memo_get(le(1)); break;
      case 'j': memo_get(le(4)); break;
      case 'c': {  // GLOBAL
        std::string module = line();
        std::string name = line();
        push(make_global(std::move(module), std::move(name)));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop();
        Value* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) err("STACK_GLOBAL on non-strings");
        push(make_global(module->s, name->s));
        break;
      }
      case 'R': {  // REDUCE
        Value* args = pop();
        Value* fn = pop();
        push(call(fn, args));
        break;
      }
      case 0x81: {  // NEWOBJ
        Value* args = pop();
        Value* cls = pop();
        if (args->kind != Kind::Tuple) err("NEWOBJ arguments are a {}", kind_name(args->kind));
        push(instantiate(cls, args->items));
        break;
      }
      case 0x92: {  // NEWOBJ_EX
        pop();      // kwargs
        Value* args = pop();
        Value* cls = pop();
        if (args->kind != Kind::Tuple) err("NEWOBJ_EX arguments are a {}", kind_name(args->kind));
        push(instantiate(cls, args->items));
        break;
      }
      case 'o': {  // OBJ
        auto items = pop_mark();
        if (items.empty()) err("OBJ without a class");
        Value* cls = items.front();
        push(instantiate(cls, std::vector<Value*>(items.begin() + 1, items.end())));
        break;
      }
      case 'i': {  // INST
        std::string module = line();
        std::string name = line();
        auto items = pop_mark();
        push(instantiate(make_global(std::move(module), std::move(name)), std::move(items)));
        break;
      }
      case 'b': {  // BUILD
        Value* state = pop();
        Value* obj = top();
        if (obj->kind == Kind::Object || obj->kind == Kind::Dict) obj->state = state;
        else if (obj->kind != Kind::Tensor) err("BUILD on a {}", kind_name(obj->kind));
        break;
      }
      case 'Q':
      case 'P': {  // BINPERSID / PERSID
        Value* pid;
        if (op == 'Q') {
          pid = pop();
        } else {
          pid = make(Kind::Str);
          pid->s = line();
        }
        if (!pl_) err("persistent id without a resolver");
        push(pl_(*pid, doc_));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84: err("extension registry opcodes are not supported");
      case 0x97:
      case 0x98: err("out-of-band buffers are not supported");
      default: err("unknown opcode 0x{:02x}", op);
    }
  }
}

}  // namespace

std::unique_ptr<Document> unpickle(std::string_view data, const std::string& name, const PersistentLoad& pl,
                                   const Limits& limits) {
  auto doc = std::make_unique<Document>();
  Unpickler u(data, name, pl, limits, *doc);
  doc->root = u.run();
  return doc;
}

}  // namespace rdm::formats::pickle
