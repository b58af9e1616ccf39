// Internal: "<type>: <what>" for an exception, for messages concur prints about failures it cannot
// throw to anyone (a callback's, an initializer's).
#pragma once

#include <exception>
#include <string>

namespace concur::detail {

std::string describe_exception(const std::exception_ptr& error);

}  // namespace concur::detail
