#include "nowcast/nowcast_net.hpp"

#include <filesystem>

#include <torch/nn/functional/activation.h>
#include <torch/serialize.h>

#include "hpt/error.hpp"

namespace hpt::nowcast {

std::int64_t tensor_kind(const torch::Tensor& t) { return t.dim() <= 1 ? 0 : (t.dim() == 2 ? 1 : 2); }

NowcastNetImpl::NowcastNetImpl(const NowcastShape& shape) : shape_(shape) {
  in_ = register_module("layer1", torch::nn::Linear(shape.context + kTensorKinds, shape.hidden));
  mid_ = register_module("layer2", torch::nn::Linear(shape.hidden, shape.hidden));
  out_ = register_module("head", torch::nn::Linear(shape.hidden, 1));
}

torch::Tensor NowcastNetImpl::forward(const torch::Tensor& features) {
  torch::Tensor h = torch::silu(in_->forward(features));
  h = torch::silu(mid_->forward(h));
  return out_->forward(h).squeeze(-1);
}

torch::Tensor features_of(const std::vector<torch::Tensor>& deltas, double& scale) {
  const std::int64_t context = static_cast<std::int64_t>(deltas.size());
  const torch::Tensor& last = deltas.back();
  std::vector<torch::Tensor> columns;
  columns.reserve(deltas.size());
  for (auto it = deltas.rbegin(); it != deltas.rend(); ++it) columns.push_back(it->reshape({-1}).to(torch::kFloat32));
  torch::Tensor x = torch::stack(columns, 1);  // [numel, context], newest first
  scale = x.square().mean().sqrt().item<double>();
  if (scale > 0.0) x = x / scale;
  torch::Tensor kind = torch::zeros({x.size(0), kTensorKinds}, x.options());
  kind.select(1, tensor_kind(last)).fill_(1.0);
  (void)context;
  return torch::cat({x, kind}, 1);
}

torch::Tensor predict_change(NowcastNet& net, const std::vector<torch::Tensor>& deltas) {
  double scale = 0.0;
  torch::Tensor x = features_of(deltas, scale);
  const torch::Tensor& like = deltas.back();
  if (scale == 0.0) return torch::zeros_like(like);
  torch::Tensor y = net->forward(x.to(net->parameters().front().device())) * scale;
  return y.reshape(like.sizes()).to(like.device(), like.scalar_type());
}

void save_nowcaster(NowcastNet& net, const std::string& path) {
  torch::serialize::OutputArchive archive;
  const NowcastShape& s = net->shape();
  archive.write("shape", torch::tensor({s.context, s.ahead, s.window, s.hidden}, torch::kInt64));
  torch::serialize::OutputArchive weights;
  net->save(weights);
  archive.write("net", weights);
  archive.save_to(path);
}

NowcastNet load_nowcaster(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw BadInput("nowcaster model file " + path + " does not exist (train one with hpt-nowcast-train)");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor shape;
    archive.read("shape", shape);
    if (shape.numel() != 4) throw BadInput("nowcaster model file " + path + ": its shape record is not 4 numbers");
    auto s = shape.accessor<std::int64_t, 1>();
    NowcastShape ns{s[0], s[1], s[2], s[3]};
    if (ns.context < 1 || ns.ahead < 1 || ns.window < 1 || ns.hidden < 1)
      throw BadInput("nowcaster model file " + path + ": its shape has a number below 1");
    NowcastNet net(ns);
    torch::serialize::InputArchive weights;
    archive.read("net", weights);
    net->load(weights);
    return net;
  } catch (const c10::Error& e) {
    throw BadInput("nowcaster model file " + path + " is not one (written by hpt-nowcast-train): " +
                   e.what_without_backtrace());
  }
}

}  // namespace hpt::nowcast
