#pragma once

#include <map>
#include <string>
#include <vector>

namespace syncpod::core {

/// This process's environment as NAME=value entries, with `overrides` replacing or adding
/// entries: what a child process (a worker the scaler starts, a job process a worker starts)
/// is given.
std::vector<std::string> environmentWith(const std::map<std::string, std::string>& overrides);

}  // namespace syncpod::core
