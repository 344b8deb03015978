#include "checkpoint/state_dict_pickle.hpp"

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <vector>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include "hpt/error.hpp"

namespace hpt::host {

namespace {

// Pickle opcodes (Python's Lib/pickletools.py), those of protocol 2 that torch.save writes.
enum PickleOp : unsigned char {
  kMark = '(', kStop = '.', kPop = '0', kBinInt = 'J', kBinInt1 = 'K', kBinInt2 = 'M', kNone = 'N',
  kBinPersId = 'Q', kReduce = 'R', kBinUnicode = 'X', kAppend = 'a', kBuild = 'b', kGlobal = 'c',
  kEmptyDict = '}', kAppends = 'e', kBinGet = 'h', kLongBinGet = 'j', kEmptyList = ']', kBinPut = 'q',
  kLongBinPut = 'r', kSetItem = 's', kTuple = 't', kEmptyTuple = ')', kSetItems = 'u', kBinFloat = 'G',
  kProto = 0x80, kTuple1 = 0x85, kTuple2 = 0x86, kTuple3 = 0x87, kNewTrue = 0x88, kNewFalse = 0x89, kLong1 = 0x8a,
};

// A value on the pickle machine's stack: an IValue, or a global ("module.name") that
// REDUCE may call.
struct PickleItem {
  c10::IValue value;
  std::string global;
};

class PickleMachine {
 public:
  PickleMachine(const std::string& pickle, caffe2::serialize::PyTorchStreamReader& zip, const std::string& what)
      : in_(pickle), zip_(zip), what_(what) {}

  c10::IValue run() {
    if (byte() != kProto || byte() > 5) fail("not a pickle (no PROTO opcode at its start)");
    for (;;) {
      const unsigned char op = byte();
      switch (op) {
        case kStop:
          if (stack_.size() != 1) fail("the pickle ends with " + std::to_string(stack_.size()) + " values on its stack");
          return value(stack_.back());
        case kMark: marks_.push_back(stack_.size()); break;
        case kPop: pop(); break;
        case kNone: push(c10::IValue()); break;
        case kNewTrue: push(true); break;
        case kNewFalse: push(false); break;
        case kBinInt1: push(static_cast<std::int64_t>(little_endian(1))); break;
        case kBinInt2: push(static_cast<std::int64_t>(little_endian(2))); break;
        case kBinInt: push(static_cast<std::int64_t>(static_cast<std::int32_t>(little_endian(4)))); break;
        case kLong1: push(long1()); break;
        case kBinFloat: push(big_endian_double()); break;
        case kBinUnicode: push(c10::IValue(text(little_endian(4)))); break;
        case kEmptyTuple: push(c10::ivalue::Tuple::create(std::vector<c10::IValue>{})); break;
        case kTuple1: case kTuple2: case kTuple3: push(tuple(stack_.size() - (op - kTuple1 + 1))); break;
        case kTuple: push(tuple(pop_mark())); break;
        case kEmptyList: push(c10::impl::GenericList(c10::AnyType::get())); break;
        case kEmptyDict: push(c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get())); break;
        case kAppend: { c10::IValue v = value(pop()); list_at(stack_.size() - 1).push_back(v); } break;
        case kAppends: {
          const std::size_t start = pop_mark();
          auto list = list_at(start - 1);
          for (std::size_t i = start; i < stack_.size(); ++i) list.push_back(value(stack_[i]));
          stack_.resize(start);
        } break;
        case kSetItem: {
          c10::IValue v = value(pop()), k = value(pop());
          dict_at(stack_.size() - 1).insert_or_assign(k, v);
        } break;
        case kSetItems: {
          const std::size_t start = pop_mark();
          if ((stack_.size() - start) % 2 != 0) fail("SETITEMS with an odd number of values");
          auto dict = dict_at(start - 1);
          for (std::size_t i = start; i < stack_.size(); i += 2) dict.insert_or_assign(value(stack_[i]), value(stack_[i + 1]));
          stack_.resize(start);
        } break;
        case kBinPut: memo(little_endian(1)); break;
        case kLongBinPut: memo(little_endian(4)); break;
        case kBinGet: recall(little_endian(1)); break;
        case kLongBinGet: recall(little_endian(4)); break;
        case kGlobal: {
          std::string module = line(), name = line();
          stack_.push_back(global(module, name));
        } break;
        case kReduce: {
          c10::IValue args = value(pop());
          PickleItem callable = pop();
          push(call(callable, args));
        } break;
        case kBuild: {
          pop();  // the state: a state_dict's _metadata attribute, which weights do not need
          if (stack_.empty() || !stack_.back().value.isGenericDict()) fail("BUILD on something else than a dict");
        } break;
        case kBinPersId: push(storage(value(pop()))); break;
        default: fail("unsupported pickle opcode 0x" + hex(op) + " at byte " + std::to_string(at_ - 1));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw BadInput(what_ + ": " + why); }

  static std::string hex(unsigned v) {
    std::ostringstream os;
    os << std::hex << v;
    return os.str();
  }

  unsigned char byte() {
    if (at_ >= in_.size()) fail("the pickle ends early");
    return static_cast<unsigned char>(in_[at_++]);
  }
  std::uint64_t little_endian(int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(byte()) << (8 * i);
    return v;
  }
  std::int64_t long1() {
    const int n = byte();
    if (n > 8) fail("an integer of " + std::to_string(n) + " bytes");
    std::uint64_t v = little_endian(n);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t{0} << (8 * n);  // sign extension
    return static_cast<std::int64_t>(v);
  }
  double big_endian_double() {
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  std::string text(std::uint64_t n) {
    if (n > in_.size() - at_) fail("a string runs past the pickle's end");
    std::string s = in_.substr(at_, n);
    at_ += n;
    return s;
  }
  std::string line() {
    const std::size_t end = in_.find('\n', at_);
    if (end == std::string::npos) fail("a GLOBAL name runs past the pickle's end");
    std::string s = in_.substr(at_, end - at_);
    at_ = end + 1;
    return s;
  }

  void push(c10::IValue v) { stack_.push_back({std::move(v), {}}); }
  PickleItem pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("the pickle's stack runs empty");
    PickleItem top = std::move(stack_.back());
    stack_.pop_back();
    return top;
  }
  std::size_t pop_mark() {
    if (marks_.empty()) fail("a MARK is missing");
    std::size_t start = marks_.back();
    marks_.pop_back();
    return start;
  }
  c10::IValue value(const PickleItem& item) const {
    if (!item.global.empty()) fail("'" + item.global + "' is used as a value (only tensors and containers are read)");
    return item.value;
  }
  c10::IValue tuple(std::size_t start) {
    if (start > stack_.size()) fail("a tuple reaches below the stack");
    std::vector<c10::IValue> elements;
    for (std::size_t i = start; i < stack_.size(); ++i) elements.push_back(value(stack_[i]));
    stack_.resize(start);
    return c10::ivalue::Tuple::create(std::move(elements));
  }
  c10::impl::GenericList list_at(std::size_t i) {
    if (i >= stack_.size() || !stack_[i].value.isList()) fail("APPEND to something else than a list");
    return stack_[i].value.toList();
  }
  c10::impl::GenericDict dict_at(std::size_t i) {
    if (i >= stack_.size() || !stack_[i].value.isGenericDict()) fail("SETITEM on something else than a dict");
    return stack_[i].value.toGenericDict();
  }
  void memo(std::uint64_t id) {
    if (stack_.empty()) fail("PUT with an empty stack");
    memo_[id] = stack_.back();
  }
  void recall(std::uint64_t id) {
    auto it = memo_.find(id);
    if (it == memo_.end()) fail("GET of memo " + std::to_string(id) + ", never PUT");
    stack_.push_back(it->second);
  }

  PickleItem global(const std::string& module, const std::string& name) {
    if (module == "torch" && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0) {
      // torch.FloatStorage and the like: the element type of a storage.
#define HPT_STORAGE_TYPE(_, type_name) \
  if (name == #type_name "Storage") return {static_cast<std::int64_t>(c10::ScalarType::type_name), {}};
      AT_FORALL_SCALAR_TYPES_WITH_COMPLEX_AND_QINTS(HPT_STORAGE_TYPE)
#undef HPT_STORAGE_TYPE
    }
    const std::string full = module + "." + name;
    static const char* const kKnown[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                         "torch._utils._rebuild_parameter", "torch.jit._pickle.restore_type_tag"};
    for (const char* known : kKnown)
      if (full == known) return {c10::IValue(), full};
    fail("holds a " + full + ", which a weights file does not (expected a dict of tensors, as "
         "torch.save(model.state_dict(), path) writes it)");
  }

  c10::IValue call(const PickleItem& callable, const c10::IValue& args) {
    if (callable.global.empty()) fail("REDUCE on something that is not a known function");
    if (!args.isTuple()) fail("REDUCE with arguments that are not a tuple");
    const auto& a = args.toTupleRef().elements();
    if (callable.global == "collections.OrderedDict") {
      if (!a.empty()) fail("an OrderedDict built from arguments");
      return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
    }
    if (callable.global == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() < 4 || !a[0].isTensor() || !a[1].isInt() || !a[2].isTuple() || !a[3].isTuple())
        fail("a tensor with malformed arguments");
      const at::Tensor& storage = a[0].toTensor();
      try {
        return at::empty({0}, storage.options())
            .set_(storage.storage(), a[1].toInt(), int_list(a[2]), int_list(a[3]));
      } catch (const c10::Error& e) {
        fail(std::string("a tensor does not fit its storage: ") + e.what_without_backtrace());
      }
    }
    if (callable.global == "torch._utils._rebuild_parameter") {  // (data, requires_grad, backward_hooks)
      if (a.empty() || !a[0].isTensor()) fail("a parameter without its tensor");
      return a[0];
    }
    // torch.jit._pickle.restore_type_tag(value, type): the value.
    if (a.empty()) fail("restore_type_tag without a value");
    return a[0];
  }

  std::vector<std::int64_t> int_list(const c10::IValue& tuple) const {
    std::vector<std::int64_t> out;
    for (const auto& v : tuple.toTupleRef().elements()) {
      if (!v.isInt()) fail("a tensor size or stride that is not an integer");
      out.push_back(v.toInt());
    }
    return out;
  }

  // ('storage', element type, key, location, numel): the storage in record data/<key>,
  // as a flat CPU tensor (one per key, so views of one storage share it).
  c10::IValue storage(const c10::IValue& id) {
    if (!id.isTuple() || id.toTupleRef().elements().size() < 5) fail("a persistent id that is not a storage");
    const auto& e = id.toTupleRef().elements();
    if (!e[0].isString() || e[0].toStringRef() != "storage" || !e[1].isInt() || !e[2].isString() || !e[4].isInt())
      fail("a persistent id that is not a storage");
    const std::string key = e[2].toStringRef();
    if (auto it = storages_.find(key); it != storages_.end()) return it->second;
    // The element type and the size come from the file: checked before anything is
    // allocated (a damaged file must not make hpt allocate what it claims).
    const std::int64_t type_id = e[1].toInt();
    if (type_id < 0 || type_id >= static_cast<std::int64_t>(c10::ScalarType::NumOptions))
      fail("a storage of unknown element type " + std::to_string(type_id));
    const auto type = static_cast<c10::ScalarType>(type_id);
    const std::int64_t numel = e[4].toInt();
    if (numel < 0) fail("a storage of negative size " + std::to_string(numel));
    at::Tensor t;
    if (numel > 0) {
      const std::string record = "data/" + key;
      if (!zip_.hasRecord(record)) fail("its storage record " + record + " is missing");
      auto [data, size] = zip_.getRecord(record);
      const std::size_t element = c10::elementSize(type);
      if (static_cast<std::uint64_t>(numel) > size / element)
        fail("storage record " + record + " holds " + std::to_string(size) + " bytes, not " + std::to_string(numel) +
             " elements of " + std::to_string(element) + " bytes");
      t = at::empty({numel}, at::TensorOptions(type));
      std::memcpy(t.data_ptr(), data.get(), static_cast<std::size_t>(numel) * element);
    } else {
      t = at::empty({0}, at::TensorOptions(type));
    }
    storages_[key] = t;
    return t;
  }

  const std::string& in_;
  std::size_t at_ = 0;
  caffe2::serialize::PyTorchStreamReader& zip_;
  const std::string& what_;
  std::vector<PickleItem> stack_;
  std::vector<std::size_t> marks_;
  std::map<std::uint64_t, PickleItem> memo_;
  std::map<std::string, at::Tensor> storages_;
};

}  // namespace

c10::IValue read_torch_save_pickle(const std::string& bytes, const std::string& what) {
  std::istringstream stream(bytes);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  std::string pickle;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&stream);
    if (!zip->hasRecord("data.pkl")) throw BadInput(what + ": not a file torch.save wrote (it has no data.pkl)");
    auto [data, size] = zip->getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {
    throw BadInput(what + ": not a zip file torch.save wrote (torch.save's default since PyTorch 1.6; the older "
                   "format, _use_new_zipfile_serialization=False, is not read): " + e.what_without_backtrace());
  }
  try {
    return PickleMachine(pickle, *zip, what).run();
  } catch (const c10::Error& e) {  // LibTorch refusing what the file describes: a damaged file
    throw BadInput(what + ": " + e.what_without_backtrace());
  }
}

}  // namespace hpt::host
