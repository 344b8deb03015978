#include "config/distributed_settings.hpp"

namespace hpt::host {

std::vector<OptionSpec> DistributedSettings::option_specs() {
  DistributedSettings d;
  return {
      option_string("backend", d.backend,
                    "c10d process group: gloo (CPU tensors), nccl (CUDA), auto (the backend plugin's choice)",
                    {"auto", "gloo", "nccl"}),
      option_float("timeout", d.timeout_seconds,
                   "seconds a collective may wait for the other ranks before the run fails, naming them", 1.0, 86400.0),
      option_float("bucket_mb", d.bucket_mb,
                   "MiB of gradients per all-reduce bucket; buckets start as the backward pass fills them", 0.01,
                   65536.0),
      option_bool("check_sync", d.check_sync,
                  "compare a checksum of the parameters across ranks every check_every step-equivalents "
                  "(always at the end of a run); a difference fails the run"),
      option_int("check_every", d.check_every, "step-equivalents between check_sync comparisons", 1),
  };
}

DistributedSettings DistributedSettings::from(const Options& o) {
  DistributedSettings d;
  d.backend = o.get_string("backend");
  d.timeout_seconds = o.get_float("timeout");
  d.bucket_mb = o.get_float("bucket_mb");
  d.check_sync = o.get_bool("check_sync");
  d.check_every = o.get_int("check_every");
  return d;
}

}  // namespace hpt::host
