-- RealWorld status codes and error bodies for REST calls (docs/decisions/0002-rest-errors.md).
--
-- Runs before jwt_authn and the transcoder, so on the way back it sees the transcoded
-- response. Native gRPC and gRPC-Web calls (application/grpc* once grpc_web has run) are
-- never touched; neither is a text/event-stream body, which body() would buffer whole.

local NAMESPACE = "conduit.gateway"

-- Generated from the descriptors (conduit_gateway.body_fields) in place of these two lines:
-- the JSON shape of each message of a body (key -> tag: "string", "number", "bool", "enum",
-- "free", a message name, or "*" .. tag for a list), and every REST binding, most specific
-- first ({method, pattern (anchored Lua pattern of the path), body (a message name, "" for no
-- body, "raw" for a form)}).
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

-- The binding of a REST request (method and path), or nil and the set of methods declared on
-- its path (nil when the path is unknown).
local function find_binding(headers)
  local method = headers:get(":method")
  local path = string.match(headers:get(":path") or "", "^[^?#]*")
  local allowed = nil
  for _, binding in ipairs(BODY_BINDINGS) do
    if string.find(path, binding.pattern) then
      if binding.method == method then
        return binding, nil
      end
      allowed = allowed or {}
      allowed[binding.method] = true
    end
  end
  return nil, allowed
end

-- The index after the JSON string opening at `i`, or nil when it is not a valid JSON string
-- (unterminated, a raw control character, an unknown escape).
local function string_end(text, i)
  local j = i + 1
  while true do
    local stop = string.find(text, '[%z\1-\31"\\]', j)
    if stop == nil then
      return nil
    end
    local char = string.byte(text, stop)
    if char == 34 then -- '"'
      return stop + 1
    end
    if char ~= 92 then -- a raw control character
      return nil
    end
    local escape = string.sub(text, stop + 1, stop + 1)
    if escape == "u" then
      if not string.find(text, "^%x%x%x%x", stop + 2) then
        return nil
      end
      j = stop + 6
    elseif string.find(escape, '^["\\/bfnrt]$') then
      j = stop + 2
    else
      return nil
    end
  end
end

local SIMPLE_ESCAPES = {b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}

-- The text of a JSON key's escapes resolved; \u escapes outside ASCII stay as written (no known
-- key has them).
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

local function skip_space(text, i)
  return string.find(text, "[^ \t\r\n]", i)
end

-- Whether a JSON value of `kind` may stand where `tag` is expected (null always may: unset).
local function accepts(tag, kind)
  if kind == "null" or tag == "free" then
    return true
  end
  if string.byte(tag, 1) == 42 then -- "*": a list
    return kind == "array"
  end
  if BODY_MESSAGES[tag] ~= nil then
    return kind == "object"
  end
  if tag == "number" then
    return kind == "number" or kind == "string"
  end
  if tag == "enum" then
    return kind == "string" or kind == "number"
  end
  return tag == kind -- "string", "bool"
end

local TYPE_MESSAGES = {string = "must be a string", number = "must be a number", bool = "must be true or false",
                       enum = "is invalid"}

local function type_message(tag)
  if string.byte(tag, 1) == 42 then
    return "must be a list"
  end
  return TYPE_MESSAGES[tag] or "must be an object"
end

-- Scans a JSON body against the shape of `message` (a BODY_MESSAGES name). Returns nil when the
-- body is fine (unknown keys are skipped: ignored, never bound), "invalid" when it is not JSON,
-- or "type", the key and the expected tag of the first value of the wrong JSON type. Keys are
-- read, nothing is evaluated. A body nested deeper than MAX_DEPTH is left to the transcoder.
local function scan_body(text, message)
  local stack = {} -- open containers: {object = bool, shape (object: key -> tag), element (array: tag), key}
  local expect, key = message, "body"
  local mistyped = nil
  local state = "value"
  local i = skip_space(text, 1)
  if i == nil then
    return nil -- empty body
  end
  while true do
    if i == nil then
      return "invalid"
    end
    local char = string.byte(text, i)
    if state == "value" then
      local kind
      local stop
      if char == 123 then
        kind = "object"
      elseif char == 91 then
        kind = "array"
      elseif char == 34 then
        kind = "string"
        stop = string_end(text, i)
        if stop == nil then
          return "invalid"
        end
      else
        stop = string.find(text, "[^%w%.%+%-]", i) or (#text + 1)
        local token = string.sub(text, i, stop - 1)
        if token == "true" or token == "false" then
          kind = "bool"
        elseif token == "null" then
          kind = "null"
        elseif string.find(token, "^%-?%d+%.?%d*$") or string.find(token, "^%-?%d+%.?%d*[eE][%+%-]?%d+$") then
          kind = "number"
        else
          return "invalid"
        end
      end
      local fits = accepts(expect, kind)
      if not fits and mistyped == nil then
        mistyped = {key, expect}
      end
      if kind == "object" or kind == "array" then
        if #stack >= MAX_DEPTH then
          return nil
        end
        local entry = {object = kind == "object", key = key}
        if fits and kind == "object" then
          entry.shape = BODY_MESSAGES[expect]
        elseif fits and expect ~= "free" then
          entry.element = string.sub(expect, 2)
        else
          entry.element = "free"
        end
        stack[#stack + 1] = entry
        i = skip_space(text, i + 1)
        if i == nil then
          return "invalid"
        end
        local close = string.byte(text, i)
        if (entry.object and close == 125) or (not entry.object and close == 93) then
          stack[#stack] = nil
          i, state = i + 1, "after"
        elseif entry.object then
          state = "key"
        else
          expect = entry.element
        end
      else
        i, state = stop, "after"
      end
    elseif state == "key" then
      if char ~= 34 then
        return "invalid"
      end
      local stop = string_end(text, i)
      if stop == nil then
        return "invalid"
      end
      key = unescape(string.sub(text, i + 1, stop - 2))
      i = skip_space(text, stop)
      if i == nil or string.byte(text, i) ~= 58 then -- ':'
        return "invalid"
      end
      i = skip_space(text, i + 1)
      local shape = stack[#stack].shape
      expect = (shape ~= nil and shape[key]) or "free"
      state = "value"
    else -- after a value
      i = skip_space(text, i)
      if i == nil then
        if #stack > 0 then
          return "invalid"
        end
        if mistyped ~= nil then
          return "type", mistyped[1], mistyped[2]
        end
        return nil
      end
      if #stack == 0 then
        return "invalid" -- trailing text
      end
      char = string.byte(text, i)
      local top = stack[#stack]
      if char == 44 then -- ','
        i = skip_space(text, i + 1)
        if top.object then
          state = "key"
        else
          expect, key, state = top.element, top.key, "value"
        end
      elseif (top.object and char == 125) or (not top.object and char == 93) then
        stack[#stack] = nil
        key = top.key
        i = i + 1
      else
        return "invalid"
      end
    end
  end
end

-- Printable ASCII, at most 128 bytes: a name that comes from the client.
local function printable(text)
  text = string.gsub(text, "[^\32-\126]", "?")
  if #text > 128 then
    text = string.sub(text, 1, 128) .. "..."
  end
  return text
end

local function own_reply(handle, status, body, extra)
  handle:streamInfo():dynamicMetadata():set(NAMESPACE, "own_reply", true)
  local headers = {[":status"] = status, ["content-type"] = "application/json"}
  for name, value in pairs(extra or {}) do
    headers[name] = value
  end
  handle:respond(headers, body)
end

local function check_request(handle, headers)
  local binding, allowed = find_binding(headers)
  if binding == nil then
    if allowed == nil then
      return -- an unknown path: the transcoder's 404
    end
    if headers:get(":method") == "OPTIONS" and headers:get("access-control-request-method") ~= nil then
      -- A preflight the CORS filter (before this one) did not answer: its origin is not allowed.
      own_reply(handle, "403", '{"errors":{"origin":["is not allowed"]}}')
      return
    end
    local methods = {}
    for method, _ in pairs(allowed) do
      methods[#methods + 1] = method
    end
    table.sort(methods)
    own_reply(handle, "405", '{"errors":{"method":["is not allowed"]}}', {allow = table.concat(methods, ", ")})
    return
  end
  if binding.body == "raw" then
    return
  end
  local body = handle:body()
  if body == nil or body:length() == 0 then
    return
  end
  if binding.body == "" then
    body:setBytes("") -- no body in the contract: whatever was sent is ignored
    return
  end
  local outcome, key, tag = scan_body(body:getBytes(0, body:length()), binding.body)
  if outcome == "invalid" then
    own_reply(handle, "400", '{"errors":{"body":["is not valid JSON"]}}')
  elseif outcome == "type" then
    own_reply(handle, "422", '{"errors":{' .. json_string(printable(key)) .. ":[" .. json_string(type_message(tag)) .. "]}}")
  end
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local content_type = headers:get("content-type") or ""
  if not starts_with(content_type, "application/grpc") then
    handle:streamInfo():dynamicMetadata():set(NAMESPACE, "rest", true)
    check_request(handle, headers)
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
