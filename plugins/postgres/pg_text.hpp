// Text helpers of the postgres connector that need no database: keeping secrets out of
// messages, and turning JSON values into the text forms PostgreSQL parses.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <syncpod/sdk/model.hpp>

namespace syncpod::plugins::postgres {

/// The URL with its password replaced by "***" (userinfo and a ?password= parameter), e.g.
/// postgresql://sync:***@db:5432/crm. Anything it cannot read is redacted whole.
std::string redactUrl(std::string_view url);

/// The password texts a URL carries, raw and percent-decoded, for scrub().
std::vector<std::string> urlSecrets(std::string_view url);

/// `text` with every occurrence of each secret replaced by "***".
std::string scrub(std::string text, const std::vector<std::string>& secrets);

/// One line: line breaks and tabs become "; " or spaces, surrounding blanks are trimmed.
std::string oneLine(std::string_view text);

/// The text a JSON value is sent as (a parameter cast from text to the column type); nullopt
/// for null. Strings go as they are, objects and arrays as JSON unless `postgres_array` asks for
/// an array literal ({1,2}) for array columns.
std::optional<std::string> parameterText(const Json& value, bool postgres_array);

/// A PostgreSQL array literal of texts, e.g. {"a","b\"c"}, for a text[] parameter.
std::string textArrayLiteral(const std::vector<std::string>& items);
/// The same with NULL elements where an item is nullopt, e.g. {"a",NULL}.
std::string textArrayLiteralWithNulls(const std::vector<std::optional<std::string>>& items);

}  // namespace syncpod::plugins::postgres
