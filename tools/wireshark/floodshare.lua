-- floodshare.lua - a Wireshark / tshark dissector for the floodshare peer protocol, FLOOD/1.
--
-- Load it for one run:     wireshark -X lua_script:tools/wireshark/floodshare.lua
--                          tshark -X lua_script:tools/wireshark/floodshare.lua -r flood.pcapng -Y floodshare
-- or for good:             cp tools/wireshark/floodshare.lua ~/.local/lib/wireshark/plugins/
-- (tools/wireshark/README.md says more.)
--
-- The protocol in one paragraph (docs/PROTOCOL.md is the contract): peers talk over TCP. Every
-- message is ONE TEXT LINE, the header,
--
--     FLOOD/1 VERB key=value key=value ...\n
--
-- of at most 2048 bytes, optionally followed by a BINARY BODY whose length the header's `len`
-- gives (only ITEM, DATA, MANIFEST, HASHLIST and LISTING have one). Values are percent-encoded, so a header never
-- holds a raw space, newline or non-ASCII byte: "my file.txt" travels as "my%20file.txt".
--
-- What makes this dissector more than a string split is TCP. TCP delivers a byte stream, not
-- messages, so one captured segment may hold
--   * half a header (the rest comes in the next segment),
--   * several whole messages (a burst of GETs on a kept-open link), or
--   * a tiny piece of a 4 MiB DATA body (the body spans dozens of segments).
-- Wireshark solves this with "desegmentation": the dissector says "this message needs N more
-- bytes" (pinfo.desegment_len), TCP collects them, and calls the dissector again with the whole
-- message in one buffer. Look for desegment_len below to see it done.
--
-- Peers listen on whatever ports scripts/topology picked, so there is no well-known port. The
-- dissector is found by a HEURISTIC: any TCP stream whose data starts with "FLOOD/1 " is ours.
-- You can also pin ports with the preference floodshare.ports or with Decode As... (TCP port).

local floodshare = Proto("floodshare", "floodshare peer protocol (FLOOD/1)")

local MAGIC = "FLOOD/1 "        -- every header starts with the version and one space
local MAX_HEADER = 2048         -- bytes of one header line, the '\n' included
local MAX_BODY = 1024 * 1024 * 1024 -- bodies larger than this are shown, not reassembled

-- Lua 5.2 has bit32; a Wireshark built with Lua 5.1 has the "bit" library instead.
local bits = bit32 or bit

---------------------------------------------------------------------------------------------
-- The keys a header may carry. `kind` says how to check and show the value:
--   text    a percent-decoded string (a name, a path, a message)
--   addr    host:port, or [ipv6]:port
--   number  decimal, unsigned, no sign or leading zeros, fits in 64 bits
--   qid     16 lower-case hex digits (a query id)
--   md5     32 lower-case hex digits
--   crc     8 lower-case hex digits (zlib's CRC-32)
--   kind    "file" or "folder"
---------------------------------------------------------------------------------------------
local KEYS = {
    qid    = { kind = "qid",    label = "Query id" },
    ttl    = { kind = "number", label = "TTL (hops the query may still travel)", max = 255 },
    hops   = { kind = "number", label = "Hops (travelled so far)", max = 255 },
    origin = { kind = "addr",   label = "Origin (the peer that started the query)" },
    from   = { kind = "addr",   label = "From (the peer that sent this message)" },
    holder = { kind = "addr",   label = "Holder (where to send REQUEST or FETCH)" },
    peer   = { kind = "number", label = "Peer id of the holder", min = 1, max = 65535 },
    kind   = { kind = "kind",   label = "Kind" },
    size   = { kind = "number", label = "Size of the item (bytes)" },
    md5    = { kind = "md5",    label = "MD5 of the item" },
    path   = { kind = "text",   label = "Path in the holder's share" },
    name   = { kind = "text",   label = "Name" },
    len    = { kind = "number", label = "Body length (bytes after the header)" },
    zmd5   = { kind = "md5",    label = "MD5 of the body (the zip archive)" },
    code   = { kind = "text",   label = "Error code" },
    msg    = { kind = "text",   label = "Error message" },
    offset = { kind = "number", label = "Offset (first byte of the file)" },
    chunk  = { kind = "number", label = "Chunk size (bytes per DATA frame)" },
    idx    = { kind = "number", label = "Chunk index" },
    crc    = { kind = "crc",    label = "CRC-32 of the chunk" },
    mode   = { kind = "text",   label = "Permission bits of the file on the holder (octal)" },
    root   = { kind = "text",   label = "Root of the file's SHA-256 piece list (hex)" },
    piece  = { kind = "number", label = "Piece size (bytes per SHA-256 piece hash)" },
    ["end"] = { kind = "number", label = "End (first byte after the range asked for)" },
    total  = { kind = "number", label = "Entries of the folder listed, in all" },
    count  = { kind = "number", label = "Entries in this page (lines of the body)" },
    ["next"] = { kind = "number", label = "Offset of the next page (= total at the end)" },
    nocrc  = { kind = "number", label = "No CRC-32 (the requester checks every piece by SHA-256: DATA says crc=00000000)", min = 1, max = 1 },
}

-- The verbs, the keys each one must carry, and whether a body of `len` bytes follows.
local VERBS = {
    GET      = { keys = { "qid", "ttl", "hops", "origin", "from", "name" },
                 what = "a flooded query for items called name" },
    FOUND    = { keys = { "qid", "hops", "from", "holder", "peer", "kind", "size", "md5", "path", "name" },
                 what = "a hit, travelling back hop by hop along the reverse path" },
    REQUEST  = { keys = { "path", "md5" }, what = "ask the holder for an item as a zip archive" },
    ITEM     = { keys = { "kind", "size", "md5", "len", "zmd5" }, body = true,
                 what = "the holder's answer to REQUEST: a zip archive follows" },
    ERROR    = { keys = { "code", "msg" }, what = "an error reply; the sender closes the connection" },
    FETCH    = { keys = { "path", "md5", "offset" }, what = "ask the holder for a file's bytes from offset on" },
    RANGE    = { keys = { "size", "md5", "offset", "chunk" }, what = "the holder's answer to FETCH; DATA frames follow" },
    DATA     = { keys = { "idx", "len", "crc" }, body = true, what = "one chunk of the file, with its CRC-32" },
    LIST     = { keys = { "path", "md5" }, what = "ask the holder for a folder's manifest" },
    MANIFEST = { keys = { "md5", "len" }, body = true, what = "the folder's manifest: one line per entry" },
    HASHES   = { keys = { "path", "md5", "root" }, what = "ask the holder for a file's piece hash list" },
    HASHLIST = { keys = { "size", "md5", "root", "piece", "len" }, body = true,
                 what = "the piece hash list: 32 bytes of SHA-256 per piece" },
    BROWSE   = { keys = { "from", "offset" }, what = "ask a peer for a page of its share's listing" },
    LISTING  = { keys = { "peer", "total", "offset", "count", "next", "len" }, body = true,
                 what = "a page of the listing: one line per entry" },
    ROOTS    = { keys = { "path", "md5", "root" }, what = "ask the holder for the piece roots of a folder's files" },
    ROOTLIST = { keys = { "md5", "root", "len" }, body = true,
                 what = "the folder's file roots: 32 bytes of SHA-256 per file, in manifest order" },
    WATCH    = { keys = { "from", "path" }, what = "a sync pair's watch: tell me when path changes" },
    CHANGED  = { keys = { "path" }, what = "path's md5 now (no md5: no such item), at once and at each change" },
}

---------------------------------------------------------------------------------------------
-- Fields: what you can filter on (floodshare.qid == "...", floodshare.ttl < 2, ...) and what
-- `tshark -T fields -e floodshare.KEY` prints. Values are shown percent-DECODED.
---------------------------------------------------------------------------------------------
local f = {
    version = ProtoField.string("floodshare.version", "Version"),
    verb    = ProtoField.string("floodshare.verb", "Verb"),
    header_len = ProtoField.uint32("floodshare.header_len", "Header length", base.DEC),
    body    = ProtoField.bytes("floodshare.body", "Body"),
    unknown_key = ProtoField.string("floodshare.unknown_key", "Unknown key (ignored by peers)"),
    manifest_line = ProtoField.string("floodshare.manifest_line", "Manifest entry"),
    crc_ok  = ProtoField.bool("floodshare.crc_ok", "Body matches its CRC-32"),
}
for key, spec in pairs(KEYS) do
    local abbr = "floodshare." .. key
    if spec.kind == "number" then
        f[key] = ProtoField.uint64(abbr, spec.label, base.DEC)
    elseif spec.kind == "crc" then
        f[key] = ProtoField.uint32(abbr, spec.label, base.HEX)
    else
        f[key] = ProtoField.string(abbr, spec.label)
    end
end
local field_list = {}
for _, field in pairs(f) do field_list[#field_list + 1] = field end
floodshare.fields = field_list

-- Expert info: Analyze > Expert Information lists these, and `-Y _ws.expert` finds them.
local e = {
    not_flood = ProtoExpert.new("floodshare.not_flood", "Data does not start with FLOOD/1",
        expert.group.MALFORMED, expert.severity.ERROR),
    version = ProtoExpert.new("floodshare.version_bad", "Version is not FLOOD/1 (peers answer ERROR code=version)",
        expert.group.MALFORMED, expert.severity.ERROR),
    toolarge = ProtoExpert.new("floodshare.toolarge", "Header over 2048 bytes without a newline (peers answer ERROR code=toolarge)",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_pct = ProtoExpert.new("floodshare.bad_percent", "Bad percent-encoding",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_byte = ProtoExpert.new("floodshare.bad_byte", "Raw control or non-ASCII byte in the header",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_token = ProtoExpert.new("floodshare.bad_token", "Malformed token",
        expert.group.MALFORMED, expert.severity.ERROR),
    bad_value = ProtoExpert.new("floodshare.bad_value", "Bad value",
        expert.group.MALFORMED, expert.severity.ERROR),
    missing = ProtoExpert.new("floodshare.missing_key", "Required key missing",
        expert.group.MALFORMED, expert.severity.ERROR),
    unknown_verb = ProtoExpert.new("floodshare.unknown_verb", "Unknown verb (peers answer ERROR code=unknown)",
        expert.group.MALFORMED, expert.severity.WARN),
    unknown_key = ProtoExpert.new("floodshare.unknown_key.expert", "Unknown key (FLOOD/1 peers ignore it)",
        expert.group.UNDECODED, expert.severity.NOTE),
    error_reply = ProtoExpert.new("floodshare.error_reply", "The peer answered ERROR",
        expert.group.RESPONSE_CODE, expert.severity.NOTE),
    big_body = ProtoExpert.new("floodshare.big_body", "Body too large to reassemble here",
        expert.group.UNDECODED, expert.severity.WARN),
    crc_bad = ProtoExpert.new("floodshare.crc_bad", "DATA body does not match its crc",
        expert.group.CHECKSUM, expert.severity.ERROR),
}
floodshare.experts = { e.not_flood, e.version, e.toolarge, e.bad_pct, e.bad_byte, e.bad_token,
    e.bad_value, e.missing, e.unknown_verb, e.unknown_key, e.error_reply, e.big_body, e.crc_bad }

-- Preferences (Edit > Preferences > Protocols > FLOODSHARE, or tshark -o floodshare.NAME:VALUE).
floodshare.prefs.ports = Pref.range("TCP ports", "",
    "TCP ports always decoded as FLOOD/1, e.g. 10811-10813 (the heuristic finds any port anyway)", 65535)
floodshare.prefs.check_crc = Pref.bool("Check DATA CRC-32", false,
    "Compute the CRC-32 of every DATA body and compare it with the header's crc (Lua is slow at this: about 10 MB a second)")

---------------------------------------------------------------------------------------------
-- Small helpers: percent-decoding, number and value checks, CRC-32.
---------------------------------------------------------------------------------------------

-- Percent-decoding: "%XX" is the byte 0xXX, anything else stands for itself. "%00" is refused
-- (a value may not hold a NUL), and so is a '%' not followed by two hex digits.
-- Returns the decoded string, or nil and the reason.
local function pct_decode(s)
    if not s:find("%", 1, true) then return s end
    local out, i = {}, 1
    while i <= #s do
        local c = s:sub(i, i)
        if c == "%" then
            local hex = s:sub(i + 1, i + 2)
            if not hex:match("^%x%x$") then
                return nil, "'%' at value byte " .. i .. " is not followed by two hex digits"
            end
            if hex == "00" then return nil, "%00 (a NUL byte) is refused" end
            out[#out + 1] = string.char(tonumber(hex, 16))
            i = i + 3
        else
            out[#out + 1] = c
            i = i + 1
        end
    end
    return table.concat(out)
end

-- A decimal number as the protocol writes it: digits only, no leading zero, at most 2^64-1.
-- Lua numbers are doubles (exact only up to 2^53), so the value is built as a UInt64.
local U64_MAX = UInt64.max()
local function parse_u64(s)
    if not s:match("^%d+$") or (#s > 1 and s:sub(1, 1) == "0") then return nil end
    local v = UInt64(0)
    for i = 1, #s do
        local d = s:byte(i) - 48
        if v > (U64_MAX - d) / 10 then return nil end -- would not fit in 64 bits
        v = v * 10 + d
    end
    return v
end

-- Checks a decoded value against its key's kind. Returns nil if it is fine, else the reason.
local function value_problem(key, spec, v)
    local kind = spec.kind
    if kind == "number" then
        local n = parse_u64(v)
        if not n then return key .. " is not a decimal number that fits in 64 bits" end
        if (spec.min and n < UInt64(spec.min)) or (spec.max and n > UInt64(spec.max)) then
            return string.format("%s is not from %d to %d", key, spec.min or 0, spec.max)
        end
    elseif kind == "qid" then
        if #v ~= 16 or not v:match("^[0-9a-f]+$") then return "qid is not 16 lower-case hex digits" end
    elseif kind == "md5" then
        if #v ~= 32 or not v:match("^[0-9a-f]+$") then return key .. " is not 32 lower-case hex digits" end
    elseif kind == "crc" then
        if #v ~= 8 or not v:match("^[0-9a-f]+$") then return "crc is not 8 lower-case hex digits" end
    elseif kind == "kind" then
        if v ~= "file" and v ~= "folder" then return "kind is neither file nor folder" end
    elseif kind == "addr" then
        local port = v:match("^[^:%[%]]+:(%d+)$") or v:match("^%[[%x:%.]+%]:(%d+)$")
        if not port or tonumber(port) < 1 or tonumber(port) > 65535 then
            return key .. " is not host:port"
        end
    end
    return nil
end

-- CRC-32 as zlib computes it (reflected, polynomial 0xEDB88320), one table lookup per byte.
local CRC_TABLE = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        if bits.band(c, 1) == 1 then c = bits.bxor(0xEDB88320, bits.rshift(c, 1))
        else c = bits.rshift(c, 1) end
    end
    CRC_TABLE[i] = c
end
local function crc32(tvb, offset, length)
    local band, bxor, rshift, byte = bits.band, bits.bxor, bits.rshift, string.byte
    local crc = 0xFFFFFFFF
    local pos, stop = offset, offset + length
    while pos < stop do
        local n = math.min(8192, stop - pos)
        local s = tvb:raw(pos, n)
        for i = 1, n do
            crc = bxor(CRC_TABLE[band(bxor(crc, byte(s, i)), 0xFF)], rshift(crc, 8))
        end
        pos = pos + n
    end
    return bxor(crc, 0xFFFFFFFF) % 4294967296
end

---------------------------------------------------------------------------------------------
-- Parsing one header line into tokens. Nothing is added to the tree here: while TCP is still
-- collecting a body we only need `len`, and the tree is built once the message is whole.
---------------------------------------------------------------------------------------------

-- Splits the line at single spaces, keeping where each token starts (0-based, in the line).
local function split_tokens(line)
    local tokens, pos = {}, 1
    while true do
        local sp = line:find(" ", pos, true)
        local stop = sp and sp - 1 or #line
        tokens[#tokens + 1] = { text = line:sub(pos, stop), at = pos - 1 }
        if not sp then break end
        pos = sp + 1
    end
    return tokens
end

-- Returns { version, verb, keys = {key -> entry}, order = {entries}, problems = {...} }, where
-- an entry is { key, raw, value, at, size, problem } and a problem is { expert, text, at, size }
-- (at/size locate the bytes in the line; nil means the whole header).
local function parse_header(line)
    local h = { keys = {}, order = {}, problems = {} }
    local function problem(ex, text, at, size)
        h.problems[#h.problems + 1] = { expert = ex, text = text, at = at, size = size }
    end

    -- Only printable ASCII may appear raw: everything else must have been percent-encoded.
    local bad = line:find("[^\32-\126]")
    if bad then
        problem(e.bad_byte, string.format("byte 0x%02x at offset %d: values must be percent-encoded",
            line:byte(bad), bad - 1), bad - 1, 1)
    end

    local tokens = split_tokens(line)
    h.version = tokens[1].text
    h.version_at = tokens[1].at
    if h.version ~= "FLOOD/1" then
        problem(e.version, "version is \"" .. h.version .. "\", not FLOOD/1", 0, math.max(#h.version, 1))
    end
    if not tokens[2] or tokens[2].text == "" then
        problem(e.bad_token, "no verb after FLOOD/1", nil, nil)
        return h
    end
    h.verb, h.verb_at = tokens[2].text, tokens[2].at

    for i = 3, #tokens do
        local t = tokens[i]
        local eq = t.text:find("=", 1, true)
        if t.text == "" then
            problem(e.bad_token, "empty token: two spaces in a row, or a space at the end", t.at, 1)
        elseif not eq then
            problem(e.bad_token, "\"" .. t.text .. "\" is not key=value", t.at, #t.text)
        else
            local key, raw = t.text:sub(1, eq - 1), t.text:sub(eq + 1)
            local entry = { key = key, raw = raw, at = t.at, size = #t.text }
            if not key:match("^[a-z0-9_]+$") then
                entry.problem = { e.bad_token, "key \"" .. key .. "\" is not a lower-case word (a-z, 0-9, _)" }
            elseif h.keys[key] then
                entry.problem = { e.bad_token, "key " .. key .. " appears twice" }
            else
                h.keys[key] = entry
            end
            local value, why = pct_decode(raw)
            if not value then
                entry.problem = entry.problem or { e.bad_pct, key .. ": " .. why }
                value = raw -- show it as it is on the wire
            elseif KEYS[key] and not entry.problem then
                local p = value_problem(key, KEYS[key], value)
                if p then entry.problem = { e.bad_value, p } end
            end
            entry.value = value
            h.order[#h.order + 1] = entry
        end
    end

    local verb = VERBS[h.verb]
    if verb then
        for _, key in ipairs(verb.keys) do
            if not h.keys[key] then problem(e.missing, h.verb .. " without " .. key, nil, nil) end
        end
    else
        problem(e.unknown_verb, "unknown verb \"" .. h.verb .. "\"", h.verb_at, #h.verb)
    end
    return h
end

-- The value of a key, decoded, or "?" when it is missing.
local function val(h, key)
    local entry = h.keys[key]
    return entry and entry.value or "?"
end

-- One line for the Info column, e.g. "GET q7f2a ttl=3 hops=1 name=3.txt". The query id is
-- shortened to "q" and its first 4 hex digits, as the peers' logs write it.
local function summary(h)
    local v = h.verb or "?"
    local q = "q" .. val(h, "qid"):sub(1, 4)
    if v == "GET" then
        return string.format("GET %s ttl=%s hops=%s name=%s", q, val(h, "ttl"), val(h, "hops"), val(h, "name"))
    elseif v == "FOUND" then
        return string.format("FOUND %s name=%s %s hops, peer %s at %s (%s, %s bytes)", q, val(h, "name"),
            val(h, "hops"), val(h, "peer"), val(h, "holder"), val(h, "kind"), val(h, "size"))
    elseif v == "REQUEST" or v == "LIST" then
        return string.format("%s path=%s", v, val(h, "path"))
    elseif v == "ITEM" then
        return string.format("ITEM %s of %s bytes, zip archive of %s bytes", val(h, "kind"), val(h, "size"), val(h, "len"))
    elseif v == "ERROR" then
        return string.format("ERROR %s: %s", val(h, "code"), val(h, "msg"))
    elseif v == "FETCH" then
        return string.format("FETCH path=%s offset=%s", val(h, "path"), val(h, "offset"))
    elseif v == "RANGE" then
        return string.format("RANGE size=%s offset=%s chunk=%s", val(h, "size"), val(h, "offset"), val(h, "chunk"))
    elseif v == "DATA" then
        return string.format("DATA idx=%s len=%s crc=%s", val(h, "idx"), val(h, "len"), val(h, "crc"))
    elseif v == "MANIFEST" then
        return string.format("MANIFEST len=%s", val(h, "len"))
    elseif v == "BROWSE" then
        local p = h.keys["path"] and val(h, "path") or "(top level)"
        return string.format("BROWSE path=%s offset=%s", p, val(h, "offset"))
    elseif v == "LISTING" then
        return string.format("LISTING entries %s..%s of %s", val(h, "offset"), val(h, "next"),
            val(h, "total"))
    elseif v == "WATCH" then
        return string.format("WATCH path=%s", val(h, "path"))
    elseif v == "CHANGED" then
        return string.format("CHANGED path=%s md5=%s", val(h, "path"),
            h.keys["md5"] and val(h, "md5") or "(none)")
    end
    return v .. " (unknown verb)"
end

---------------------------------------------------------------------------------------------
-- Building the tree for one whole message.
---------------------------------------------------------------------------------------------

-- Adds one key=value token. hdr is the header's TvbRange start offset in tvb.
local function add_key(tree, tvb, hdr, entry)
    local range = tvb(hdr + entry.at, entry.size)
    local spec = KEYS[entry.key]
    local item
    if not spec then
        item = tree:add(f.unknown_key, range, entry.key .. "=" .. entry.value)
        item:add_proto_expert_info(e.unknown_key, "unknown key " .. entry.key .. " (FLOOD/1 peers ignore it)")
        return
    end
    if entry.problem then
        -- A value that does not parse is still shown, as text, with the reason next to it.
        item = tree:add(range, string.format("%s: %s [%s]", spec.label, entry.value, entry.problem[2]))
        item:add_proto_expert_info(entry.problem[1], entry.problem[2])
        return
    end
    if spec.kind == "number" then
        item = tree:add(f[entry.key], range, parse_u64(entry.value))
    elseif spec.kind == "crc" then
        item = tree:add(f[entry.key], range, tonumber(entry.value, 16))
    else
        item = tree:add(f[entry.key], range, entry.value)
    end
    if entry.raw ~= entry.value then
        item:append_text(" (on the wire: " .. entry.raw .. ")") -- so students see the encoding
    end
end

-- A MANIFEST body is text: "F <size> <md5> <path>" per file, "D <path>" per folder. Show the
-- first lines of it.
local function add_manifest(tree, tvb, offset, length)
    local text = tvb:raw(offset, math.min(length, 65536))
    local pos, shown = 1, 0
    while pos <= #text and shown < 200 do
        local nl = text:find("\n", pos, true)
        if not nl then break end
        tree:add(f.manifest_line, tvb(offset + pos - 1, nl - pos + 1), text:sub(pos, nl - 1))
        pos, shown = nl + 1, shown + 1
    end
end

-- Adds the whole message at offset (header_len bytes of header, then body_len of body).
local function add_message(tvb, pinfo, tree, offset, header_len, line, h, body_len)
    local total = header_len + body_len
    local info = summary(h)
    local root = tree:add(floodshare, tvb(offset, total))
    root:append_text(", " .. info)

    local header = root:add(f.header_len, tvb(offset, header_len), header_len)
    header:set_text("Header line: " .. line)
    for _, p in ipairs(h.problems) do
        local where = p.at and tvb(offset + p.at, p.size) or tvb(offset, header_len)
        header:add_tvb_expert_info(p.expert, where, p.text)
    end
    root:add(f.version, tvb(offset + h.version_at, math.max(#h.version, 1)), h.version)
    if h.verb then
        local verb = root:add(f.verb, tvb(offset + h.verb_at, math.max(#h.verb, 1)), h.verb)
        if VERBS[h.verb] then verb:append_text(" (" .. VERBS[h.verb].what .. ")") end
    end
    for _, entry in ipairs(h.order) do add_key(root, tvb, offset, entry) end

    if h.verb == "ERROR" then
        root:add_proto_expert_info(e.error_reply, "ERROR " .. val(h, "code") .. ": " .. val(h, "msg"))
    end

    if body_len > 0 then
        local body_at = offset + header_len
        local body = root:add(f.body, tvb(body_at, body_len))
        body:set_text(string.format("Body: %d bytes", body_len)) -- the bytes are in the hex pane
        if h.verb == "MANIFEST" then add_manifest(body, tvb, body_at, body_len) end
        -- crc=00000000: the frame answers a FETCH nocrc=1 and carries no CRC-32 to check (a
        -- real CRC-32 of 0 is skipped too: one chunk in four billion goes unchecked)
        if h.verb == "DATA" and floodshare.prefs.check_crc and not h.keys.crc.problem
            and h.keys.crc.value ~= "00000000" then
            local want = tonumber(h.keys.crc.value, 16)
            local got = crc32(tvb, body_at, body_len)
            local ok_item = body:add(f.crc_ok, tvb(body_at, body_len), got == want)
            ok_item:set_generated()
            if got ~= want then
                ok_item:add_proto_expert_info(e.crc_bad,
                    string.format("DATA idx=%s: body CRC-32 is %08x, header says %s", val(h, "idx"), got, h.keys.crc.value))
            end
        end
    end
    return info
end

-- Shows bytes that cannot be split into messages (not FLOOD/1, or a header with no end), and
-- consumes them all: without a header there is no way to know where the next message starts.
local function add_garbage(tvb, tree, offset, ex, text)
    local root = tree:add(floodshare, tvb(offset))
    root:append_text(", " .. text)
    root:add_proto_expert_info(ex, text)
end

---------------------------------------------------------------------------------------------
-- The message framer: looks at the bytes from offset on and returns
--   > 0   the number of bytes of one whole message, which it added to the tree, or
--   < 0   minus the number of bytes still missing (DESEGMENT_ONE_MORE_SEGMENT when unknown).
---------------------------------------------------------------------------------------------
local function dissect_one(tvb, pinfo, tree, offset, infos)
    local remaining = tvb:len() - offset

    -- 1. Does a message start here? A few bytes may be just the beginning of "FLOOD/1 ".
    local head = tvb:raw(offset, math.min(remaining, #MAGIC))
    if remaining < #MAGIC and head == MAGIC:sub(1, #head) then
        return -DESEGMENT_ONE_MORE_SEGMENT
    end
    if head:sub(1, 6) ~= "FLOOD/" then
        add_garbage(tvb, tree, offset, e.not_flood, "data that does not start with FLOOD/1 (" .. remaining .. " bytes)")
        infos[#infos + 1] = "[not FLOOD/1]"
        return remaining
    end

    -- 2. Find the end of the header line: a '\n' within the first 2048 bytes.
    local window = tvb:raw(offset, math.min(remaining, MAX_HEADER))
    local nl = window:find("\n", 1, true)
    if not nl then
        if remaining < MAX_HEADER then return -DESEGMENT_ONE_MORE_SEGMENT end -- wait for the rest
        add_garbage(tvb, tree, offset, e.toolarge, "header over 2048 bytes without a newline")
        infos[#infos + 1] = "[header too large]"
        return remaining
    end
    local header_len = nl
    local line = window:sub(1, nl - 1):gsub("\r$", "") -- "\r\n" is accepted as "\n"
    local h = parse_header(line)

    -- 3. A body follows ITEM, DATA and MANIFEST: wait until all `len` bytes of it are here.
    local body_len = 0
    if VERBS[h.verb] and VERBS[h.verb].body and h.keys.len and not h.keys.len.problem then
        body_len = tonumber(h.keys.len.value)
        if body_len > MAX_BODY then
            add_message(tvb, pinfo, tree, offset, header_len, line, h, 0)
            add_garbage(tvb, tree, offset + header_len, e.big_body,
                "body of " .. h.keys.len.value .. " bytes, over " .. MAX_BODY .. ", not reassembled")
            infos[#infos + 1] = summary(h)
            return remaining
        end
        if remaining < header_len + body_len then
            return -(header_len + body_len - remaining) -- exactly this many more bytes
        end
    end

    infos[#infos + 1] = add_message(tvb, pinfo, tree, offset, header_len, line, h, body_len)
    return header_len + body_len
end

-- The dissector proper: frames as many messages as the buffer holds.
function floodshare.dissector(tvb, pinfo, tree)
    local length = tvb:len()
    local offset = 0
    local infos = {}
    while offset < length do
        local n = dissect_one(tvb, pinfo, tree, offset, infos)
        if n < 0 then
            -- Ask TCP for more: keep the bytes from offset on, and call us again when `-n` more
            -- bytes (or one more segment) have arrived.
            pinfo.desegment_offset = offset
            pinfo.desegment_len = -n
            break
        end
        offset = offset + n
    end

    if #infos > 0 then
        -- TCP may call us twice for one frame (the end of a reassembled body, then whole
        -- messages after it): the second call appends to the Info column instead of replacing.
        local text = table.concat(infos, " | ")
        if tostring(pinfo.cols.protocol) == "FLOOD/1" then
            pinfo.cols.info:append(" | " .. text)
        else
            pinfo.cols.protocol = "FLOOD/1"
            pinfo.cols.info = text
        end
    end
    return length
end

-- The heuristic: TCP offers us the first data of every stream no other dissector claimed (and
-- with "try heuristic sub-dissectors first", of every stream). We take it only if it starts
-- with "FLOOD/1 ", and then bind the whole TCP conversation to this dissector, so the rest of
-- the stream (binary bodies included) comes straight to us.
local function heuristic(tvb, pinfo, tree)
    local n = tvb:len()
    if n < 5 then return false end -- "FLOOD" at least: too short to tell otherwise
    local head = tvb:raw(0, math.min(n, #MAGIC))
    if head ~= MAGIC:sub(1, #head) then return false end
    pinfo.conversation = floodshare
    floodshare.dissector(tvb, pinfo, tree)
    return true
end
floodshare:register_heuristic("tcp", heuristic)
-- Inside TLS (a closed network, decrypted with a key log): the same first bytes, FLOOD/1.
floodshare:register_heuristic("tls", heuristic)

-- Ports from the preference, and Decode As... > TCP port > FLOOD/1.
local tcp_port = DissectorTable.get("tcp.port")
tcp_port:add_for_decode_as(floodshare)
local registered_ports = ""
function floodshare.prefs_changed()
    if registered_ports ~= "" then tcp_port:remove(registered_ports, floodshare) end
    registered_ports = floodshare.prefs.ports
    if registered_ports ~= "" then tcp_port:add(registered_ports, floodshare) end
end
