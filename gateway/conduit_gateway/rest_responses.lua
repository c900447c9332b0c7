-- RealWorld status codes and error bodies for REST calls (docs/decisions/0002-rest-errors.md).
--
-- Runs before jwt_authn and the transcoder, so on the way back it sees the transcoded
-- response. Native gRPC and gRPC-Web calls (application/grpc* once grpc_web has run) are
-- never touched; neither is a text/event-stream body, which body() would buffer whole.

local NAMESPACE = "conduit.gateway"

-- Generated from the descriptors (conduit_gateway.body_fields) in place of these two lines:
-- the allowed JSON keys of each message of a body (a key maps to the message checked below
-- it, or to true: not checked below), and the REST bindings with a JSON body, most specific
-- first ({method, pattern (anchored Lua pattern of the path), message}).
local BODY_MESSAGES = {}
local BODY_BINDINGS = {}
-- Deeper bodies are left to the transcoder, whose JSON parser refuses more than 100 levels.
local MAX_DEPTH = 128

-- grpc-status -> HTTP status; any other non-zero code is 500.
local HTTP_STATUS = {
  ["3"] = 422, ["6"] = 422, ["9"] = 422, -- INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION
  ["16"] = 401, ["7"] = 403, ["5"] = 404, ["8"] = 429,
  ["14"] = 503, ["4"] = 504, ["12"] = 501, ["11"] = 400,
}

local function starts_with(text, prefix)
  return string.sub(text, 1, #prefix) == prefix
end

local function percent_decode(text)
  return (string.gsub(text, "%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

local function json_string(text)
  local escaped = string.gsub(text, '[%c"\\]', function(char)
    if char == '"' then return '\\"' end
    if char == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(char))
  end)
  return '"' .. escaped .. '"'
end

-- The gRPC and internal headers mean nothing to a REST client.
local function strip_internal(headers)
  local names = {}
  for name, _ in pairs(headers) do
    if starts_with(name, "grpc-") or starts_with(name, "x-conduit-") then
      names[#names + 1] = name
    end
  end
  for _, name in ipairs(names) do
    headers:remove(name)
  end
end

-- The message a REST request's JSON body is read into, from its method and path.
local function body_message(headers)
  local method = headers:get(":method")
  local path = string.match(headers:get(":path") or "", "^[^?#]*")
  for _, binding in ipairs(BODY_BINDINGS) do
    if binding.method == method and string.find(path, binding.pattern) then
      return BODY_MESSAGES[binding.message]
    end
  end
  return nil
end

local SIMPLE_ESCAPES = {b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}

-- The text of a JSON string's escapes resolved; \u escapes outside ASCII stay as written
-- (no allowed key has them, and the name in the answer stays readable).
local function unescape(raw)
  if not string.find(raw, "\\", 1, true) then
    return raw
  end
  return (string.gsub(raw, "\\(.)(%x?%x?%x?%x?)", function(char, hex)
    if char == "u" and #hex == 4 then
      local code = tonumber(hex, 16)
      if code < 128 then
        return string.char(code)
      end
      return "\\u" .. hex
    end
    return (SIMPLE_ESCAPES[char] or char) .. hex
  end))
end

-- The index after the JSON string opening at `i`, or nil when it does not end.
local function string_end(text, i)
  local j = i + 1
  while true do
    local stop = string.find(text, '["\\]', j)
    if stop == nil then
      return nil
    end
    if string.byte(text, stop) == 34 then -- '"'
      return stop + 1
    end
    j = stop + 2
  end
end

local function skip_space(text, i)
  return string.find(text, "[^ \t\r\n]", i)
end

-- The dotted path of the first object key that `schema` does not allow, at any depth; nil when
-- every key is known. Keys are read, nothing is evaluated. The whole text is scanned first: a
-- text that is not JSON (structure, literals; string contents are not checked) gives nil, and
-- the transcoder answers it. `schema` is a BODY_MESSAGES entry: key -> message name or true
-- (not checked below).
local function unknown_key(text, schema)
  local stack = {} -- open containers: {object = bool, schema, path, index}
  local current, path = schema, ""
  local found = nil
  local state = "value"
  local i = skip_space(text, 1)
  if i == nil then
    return nil -- empty body
  end
  while true do
    if i == nil then
      return nil
    end
    local char = string.byte(text, i)
    if state == "value" then
      if char == 123 or char == 91 then -- { [
        if #stack >= MAX_DEPTH then
          return nil
        end
        local object = char == 123
        stack[#stack + 1] = {object = object, schema = current, path = path, index = 0}
        i = skip_space(text, i + 1)
        if i == nil then
          return nil
        end
        local close = string.byte(text, i)
        if (object and close == 125) or (not object and close == 93) then
          stack[#stack] = nil
          i, state = i + 1, "after"
        elseif object then
          state = "key"
        else
          path = path .. "[0]"
        end
      elseif char == 34 then
        i, state = string_end(text, i), "after"
      else
        local stop = string.find(text, "[^%w%.%+%-]", i) or (#text + 1)
        local token = string.sub(text, i, stop - 1)
        if not (token == "true" or token == "false" or token == "null"
                or string.find(token, "^%-?%d+%.?%d*[eE]?[%+%-]?%d*$")) then
          return nil
        end
        i, state = stop, "after"
      end
    elseif state == "key" then
      if char ~= 34 then
        return nil
      end
      local stop = string_end(text, i)
      if stop == nil then
        return nil
      end
      local key = unescape(string.sub(text, i + 1, stop - 2))
      i = skip_space(text, stop)
      if i == nil or string.byte(text, i) ~= 58 then -- ':'
        return nil
      end
      i = skip_space(text, i + 1)
      local top = stack[#stack]
      path = top.path == "" and key or (top.path .. "." .. key)
      if type(top.schema) == "table" then
        local child = top.schema[key]
        if child == nil then
          found = found or path
          current = true
        else
          current = child == true and true or BODY_MESSAGES[child]
        end
      else
        current = true
      end
      state = "value"
    else -- after a value
      i = skip_space(text, i)
      if i == nil then
        return #stack == 0 and found or nil
      end
      if #stack == 0 then
        return nil -- trailing text: the transcoder's to judge
      end
      char = string.byte(text, i)
      local top = stack[#stack]
      if char == 44 then -- ','
        i = skip_space(text, i + 1)
        if top.object then
          state = "key"
        else
          top.index = top.index + 1
          current, path, state = top.schema, top.path .. "[" .. top.index .. "]", "value"
        end
      elseif (top.object and char == 125) or (not top.object and char == 93) then
        stack[#stack] = nil
        i = i + 1
      else
        return nil
      end
    end
  end
end

-- Envoy 1.40's transcoder drops unknown JSON fields silently: refuse them here, by name.
local function refuse_unknown_fields(handle, headers)
  local schema = body_message(headers)
  if schema == nil then
    return
  end
  local body = handle:body()
  if body == nil or body:length() == 0 then
    return
  end
  local field = unknown_key(body:getBytes(0, body:length()), schema)
  if field == nil then
    return
  end
  -- Named in printable ASCII, at most 128 bytes: the name comes from the client.
  field = string.gsub(field, "[^\32-\126]", "?")
  if #field > 128 then
    field = string.sub(field, 1, 128) .. "..."
  end
  handle:streamInfo():dynamicMetadata():set(NAMESPACE, "own_reply", true)
  handle:respond({[":status"] = "400", ["content-type"] = "application/json"},
    '{"errors":{' .. json_string(field) .. ':["is not a known field"]}}')
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if not starts_with(content_type, "application/grpc") then
    handle:streamInfo():dynamicMetadata():set(NAMESPACE, "rest", true)
    refuse_unknown_fields(handle, headers)
  end
end

local function answer_error(handle, headers, grpc_status)
  local status = HTTP_STATUS[grpc_status] or 500
  local body = headers:get("x-conduit-error-body")
  local oauth = headers:get("x-conduit-oauth-error")
  if oauth ~= nil then
    -- RFC 6749 section 5.2: 401 for a failed client authentication, 400 for the rest.
    body = oauth
    if string.find(oauth, '"error":"invalid_client"', 1, true) then
      status = 401
      headers:replace("www-authenticate", 'Basic realm="conduit"')
    else
      status = 400
    end
    headers:replace("cache-control", "no-store")
  elseif body == nil then
    local message = percent_decode(headers:get("grpc-message") or "")
    body = '{"errors":{"body":[' .. json_string(message) .. "]}}"
  end
  handle:streamInfo():dynamicMetadata():set(NAMESPACE, "grpc_status", grpc_status)
  strip_internal(headers)
  -- Headers first: changes made after body() are ignored.
  headers:replace(":status", tostring(status))
  headers:replace("content-type", "application/json")
  handle:body(true):setBytes(body)
end

-- jwt_authn answers 403 for a token it rejects (wrong audience, unknown key); to a REST
-- client any unusable token is a 401. Its replies carry `error="invalid_token"`.
local function is_token_rejection(headers)
  local challenge = headers:get("www-authenticate") or ""
  return headers:get(":status") == "403" and string.find(challenge, 'error="invalid_token"', 1, true) ~= nil
end

function envoy_on_response(handle)
  local meta = handle:streamInfo():dynamicMetadata():get(NAMESPACE)
  if meta == nil or not meta["rest"] then
    return
  end
  local headers = handle:headers()
  local grpc_status = headers:get("grpc-status")
  if grpc_status ~= nil and grpc_status ~= "0" then
    answer_error(handle, headers, grpc_status)
    return
  end
  local streaming = starts_with(headers:get("content-type") or "", "text/event-stream")
  strip_internal(headers)
  if is_token_rejection(headers) then
    headers:replace(":status", "401")
  end
  -- The route matched after transcoding is the RPC's, carrying its success status.
  local success = nil
  if headers:get(":status") == "200" then
    handle:streamInfo():dynamicMetadata():set(NAMESPACE, "grpc_status", "0")
    success = handle:metadata():get("success_status")
  end
  if success == 204 then
    headers:replace(":status", "204")
    headers:remove("content-type")
    headers:remove("content-length")
    -- Emptied chunk by chunk: body() would set content-length, which a 204 must not carry.
    for chunk in handle:bodyChunks() do
      chunk:setBytes("")
    end
  elseif success ~= nil then
    headers:replace(":status", tostring(success))
  end
  if not streaming then
    -- Over HTTP/2 the transcoder forwards the gRPC trailers.
    local trailers = handle:trailers()
    if trailers ~= nil then
      strip_internal(trailers)
    end
  end
end
