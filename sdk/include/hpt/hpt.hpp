// Everything a plugin needs: include this one header.
#pragma once

#include "hpt/archive.hpp"
#include "hpt/backend.hpp"
#include "hpt/checkpointer.hpp"
#include "hpt/correction.hpp"
#include "hpt/dynamics.hpp"
#include "hpt/error.hpp"
#include "hpt/metric_direction.hpp"
#include "hpt/optimizer.hpp"
#include "hpt/options.hpp"
#include "hpt/phase.hpp"
#include "hpt/plugin.hpp"
#include "hpt/state_writer.hpp"
#include "hpt/task.hpp"
#include "hpt/types.hpp"
#include "hpt/version.hpp"
