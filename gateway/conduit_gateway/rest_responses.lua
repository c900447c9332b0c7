-- RealWorld status codes and error bodies for REST calls (docs/decisions/0002-rest-errors.md).
--
-- Runs before jwt_authn and the transcoder, so on the way back it sees the transcoded
-- response. Native gRPC and gRPC-Web calls (application/grpc* once grpc_web has run) are
-- never touched; neither is a text/event-stream body, which body() would buffer whole.

local NAMESPACE = "conduit.gateway"

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

function envoy_on_request(handle)
  local content_type = handle:headers():get("content-type") or ""
  if not starts_with(content_type, "application/grpc") then
    handle:streamInfo():dynamicMetadata():set(NAMESPACE, "rest", true)
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
