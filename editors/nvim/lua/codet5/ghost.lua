-- Ghost text for Neovim 0.10/0.11 (and 0.12+ with engine = "plugin"): asks the server for
-- `textDocument/inlineCompletion` while typing (debounced, the previous request cancelled) and
-- draws the suggestion with extmarks: inline virtual text for the first line, virtual lines below.
local lsp = require("codet5.lsp")

local M = {}

local ns = vim.api.nvim_create_namespace("codet5.ghost")
local group = vim.api.nvim_create_augroup("codet5.ghost", { clear = true })
local has_011 = vim.fn.has("nvim-0.11") == 1
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2

M.debounce_ms = 0 -- the server waits out its own debounceMs, computing the prompt meanwhile
M.auto_trigger = true
M.request_on_insert_enter = true
M.enabled = true

---@class codet5.Item
---@field text string          what to insert at the anchor
---@field replace_end integer  byte column on the anchor's row up to which accepting replaces text

---@class codet5.Suggestion
---@field anchor integer[]     {row, col} (0-based row, byte col) where the suggestion starts
---@field items codet5.Item[]
---@field index integer
---@field typed string         the part of the current item already in the buffer

---@class codet5.BufferState
---@field timer uv.uv_timer_t?
---@field request {client: vim.lsp.Client, id: integer}?
---@field suggestion codet5.Suggestion?
---@field extmark integer?
---@field tick integer         changedtick seen last
---@field quiet_tick integer?  no automatic request until the text changes from this tick

---@type table<integer, codet5.BufferState>
local buffers = {}

local function changedtick(bufnr)
  return vim.api.nvim_buf_get_changedtick(bufnr)
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function cancel(s)
  if s.timer then
    s.timer:stop()
  end
  if s.request then
    pcall(lsp.cancel, s.request.client, s.request.id)
    s.request = nil
  end
end

local function hide(bufnr, s)
  if s.extmark then
    pcall(vim.api.nvim_buf_del_extmark, bufnr, ns, s.extmark)
    s.extmark = nil
  end
  s.suggestion = nil
end

---@return string
local function remaining(suggestion)
  return suggestion.items[suggestion.index].text:sub(#suggestion.typed + 1)
end

local function render(bufnr, s)
  local suggestion = assert(s.suggestion)
  local text = remaining(suggestion)
  local expand = string.rep(" ", vim.bo[bufnr].tabstop)
  local lines = vim.split((text:gsub("\t", expand)), "\n", { plain = true })
  local row, col = cursor()
  local opts = {
    id = s.extmark,
    virt_text = { { lines[1], "Codet5Suggestion" } },
    virt_text_pos = "inline",
    hl_mode = "combine",
  }
  if #lines > 1 then
    opts.virt_lines = vim.tbl_map(function(line)
      return { { line, "Codet5Suggestion" } }
    end, vim.list_slice(lines, 2))
  end
  s.extmark = vim.api.nvim_buf_set_extmark(bufnr, ns, row, col, opts)
end

--- Byte column of an LSP position on its line.
local function byte_col(bufnr, position, encoding)
  local line = vim.api.nvim_buf_get_lines(bufnr, position.line, position.line + 1, false)[1] or ""
  if encoding == "utf-8" then
    return math.min(position.character, #line)
  end
  local ok, col
  if has_011 then
    ok, col = pcall(vim.str_byteindex, line, encoding, position.character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, position.character, encoding == "utf-16")
  end
  return ok and col or #line
end

--- The items of an inlineCompletion result as text to insert at the cursor.
---@return codet5.Item[]
local function items_at_cursor(bufnr, result, encoding, row, col)
  local items = {}
  for _, raw in ipairs(result.items or result) do
    local text = type(raw.insertText) == "table" and raw.insertText.value or raw.insertText
    local replace_end = col
    if type(text) == "string" and raw.range then
      local start_row, start_col = raw.range.start.line, byte_col(bufnr, raw.range.start, encoding)
      -- Text between the range's start and the cursor must already match the item's beginning.
      if start_row == row and start_col <= col then
        local typed = vim.api.nvim_buf_get_text(bufnr, row, start_col, row, col, {})[1]
        text = text:sub(1, #typed) == typed and text:sub(#typed + 1) or nil
      else
        text = nil
      end
      if text and raw.range["end"].line == row then
        replace_end = math.max(col, byte_col(bufnr, raw.range["end"], encoding))
      end
    end
    if type(text) == "string" and text:find("%S") then
      table.insert(items, { text = text, replace_end = replace_end })
    end
  end
  return items
end

local function request(bufnr, trigger_kind)
  local s = buffers[bufnr]
  if not s or vim.api.nvim_get_current_buf() ~= bufnr or not vim.startswith(vim.api.nvim_get_mode().mode, "i") then
    return
  end
  local client = lsp.client(bufnr)
  if not client then
    return
  end
  cancel(s)
  local row, col = cursor()
  local tick = changedtick(bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = trigger_kind }
  local id
  local ok, request_id = lsp.request(client, "textDocument/inlineCompletion", params, function(err, result)
    if not s.request or s.request.id ~= id then
      return -- superseded or cancelled
    end
    s.request = nil
    if err or not result or not vim.api.nvim_buf_is_valid(bufnr) then
      return
    end
    local now_row, now_col = cursor()
    local still_here = vim.api.nvim_get_current_buf() == bufnr and changedtick(bufnr) == tick
      and now_row == row and now_col == col and vim.startswith(vim.api.nvim_get_mode().mode, "i")
    if not still_here or not M.enabled then
      return
    end
    local items = items_at_cursor(bufnr, result, client.offset_encoding, row, col)
    if #items == 0 then
      return
    end
    hide(bufnr, s)
    s.suggestion = { anchor = { row, col }, items = items, index = 1, typed = "" }
    render(bufnr, s)
  end, bufnr)
  if ok then
    id = request_id
    s.request = { client = client, id = request_id }
  end
end

local function schedule(bufnr)
  local s = buffers[bufnr]
  s.timer = s.timer or assert(vim.uv.new_timer())
  s.timer:stop()
  s.timer:start(M.debounce_ms, 0, vim.schedule_wrap(function()
    request(bufnr, TRIGGER_AUTOMATIC)
  end))
end

--- What is in the buffer between the suggestion's anchor and the cursor, or nil if the cursor is before it.
local function typed_since_anchor(bufnr, anchor)
  local row, col = cursor()
  if row < anchor[1] or (row == anchor[1] and col < anchor[2]) then
    return nil
  end
  return table.concat(vim.api.nvim_buf_get_text(bufnr, anchor[1], anchor[2], row, col, {}), "\n")
end

--- After a keystroke or a cursor move: keep the suggestion if what was typed is its beginning
--- (typed ahead), otherwise hide it and, if the text changed, ask again after the debounce.
local function on_change(bufnr)
  local s = buffers[bufnr]
  if not s then
    return
  end
  local tick = changedtick(bufnr)
  local changed = tick ~= s.tick
  s.tick = tick
  local suggestion = s.suggestion
  if suggestion then
    local typed = typed_since_anchor(bufnr, suggestion.anchor)
    local text = suggestion.items[suggestion.index].text
    if typed and #typed < #text and text:sub(1, #typed) == typed then
      suggestion.typed = typed
      render(bufnr, s)
      return
    end
    hide(bufnr, s)
    if typed == text then
      s.quiet_tick = tick -- the user typed all of it: wait for the next change
    end
  end
  -- CursorMovedI and TextChangedI both follow a keystroke: only the one that sees the change asks.
  if changed and M.enabled and M.auto_trigger and tick ~= s.quiet_tick then
    schedule(bufnr)
  end
end

--- Start drawing suggestions in `bufnr`.
---@param bufnr integer
function M.attach(bufnr)
  if buffers[bufnr] then
    return
  end
  buffers[bufnr] = { tick = changedtick(bufnr) }
  vim.api.nvim_create_autocmd({ "TextChangedI", "CursorMovedI" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      on_change(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd("InsertEnter", {
    group = group,
    buffer = bufnr,
    callback = function()
      local s = buffers[bufnr]
      if s and M.enabled and M.auto_trigger and M.request_on_insert_enter and changedtick(bufnr) ~= s.quiet_tick then
        schedule(bufnr)
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ "BufWipeout", "LspDetach" }, {
    group = group,
    buffer = bufnr,
    callback = function(args)
      if args.event == "LspDetach" then
        local client = args.data and vim.lsp.get_client_by_id(args.data.client_id)
        if not client or client.name ~= lsp.name then
          return
        end
      end
      M.detach(bufnr)
    end,
  })
end

---@param bufnr integer
function M.detach(bufnr)
  local s = buffers[bufnr]
  if not s then
    return
  end
  M.clear(bufnr)
  if s.timer then
    s.timer:close()
  end
  buffers[bufnr] = nil
  pcall(vim.api.nvim_clear_autocmds, { group = group, buffer = bufnr })
end

--- Hide the suggestion and cancel what is pending.
---@param bufnr integer?
function M.clear(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local s = buffers[bufnr]
  if s then
    cancel(s)
    hide(bufnr, s)
  end
end

--- Turn suggestions on or off everywhere.
---@param enabled boolean
function M.set_enabled(enabled)
  M.enabled = enabled
  if not enabled then
    for bufnr in pairs(buffers) do
      M.clear(bufnr)
    end
  end
end

---@param bufnr integer?
---@return boolean
function M.visible(bufnr)
  local s = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return s ~= nil and s.suggestion ~= nil and s.extmark ~= nil
end

--- The suggestion's text still to be inserted (for statuslines and tests), or nil.
---@param bufnr integer?
---@return string?
function M.text(bufnr)
  local s = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return s and s.suggestion and remaining(s.suggestion) or nil
end

--- The next word of `text`: blanks, then a run of word characters or of punctuation; or a line break and the indentation after it.
local function next_word(text)
  local blanks = text:match("^[ \t]*")
  local rest = text:sub(#blanks + 1)
  if rest:sub(1, 1) == "\n" then
    return blanks .. "\n" .. rest:sub(2):match("^[ \t]*")
  end
  return blanks .. (rest:match("^[%w_]+") or rest:match("^[^%w_%s]+") or "")
end

--- The rest of the current line of `text`; at a line break, the break and the next line.
local function next_line(text)
  if text:sub(1, 1) == "\n" then
    return "\n" .. text:sub(2):match("^[^\n]*")
  end
  return text:match("^[^\n]*")
end

--- Insert all of the suggestion, or its next word or line. Returns false when none is shown.
---@param what "all"|"word"|"line"
---@return boolean
function M.accept(what)
  local bufnr = vim.api.nvim_get_current_buf()
  local s = buffers[bufnr]
  if not (s and s.suggestion and s.extmark) then
    return false
  end
  local suggestion = s.suggestion
  local item = suggestion.items[suggestion.index]
  local rest = remaining(suggestion)
  local chunk = what == "word" and next_word(rest) or what == "line" and next_line(rest) or rest
  local whole = #chunk >= #rest
  local row, col = cursor()
  local end_col = col
  if whole and row == suggestion.anchor[1] then
    -- Text the item replaces after the anchor has moved right by what was typed since.
    end_col = math.max(col, item.replace_end + (col - suggestion.anchor[2]))
  end
  local lines = vim.split(chunk, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row, col, row, end_col, lines)
  local new_row = row + #lines - 1
  local new_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  s.tick = changedtick(bufnr)
  if whole then
    hide(bufnr, s)
    s.quiet_tick = s.tick
  else
    suggestion.typed = suggestion.typed .. chunk
    render(bufnr, s)
  end
  return true
end

--- Hide the suggestion until the text changes. Returns false when none is shown.
---@return boolean
function M.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  local s = buffers[bufnr]
  if not (s and s.suggestion) then
    return false
  end
  M.clear(bufnr)
  s.quiet_tick = changedtick(bufnr)
  return true
end

--- Show the next (1) or previous (-1) suggestion; with none or one, ask the server now.
---@param step integer
---@return boolean  false if the buffer has no codet5 client
function M.cycle(step)
  local bufnr = vim.api.nvim_get_current_buf()
  local s = buffers[bufnr]
  if not s then
    return false
  end
  local suggestion = s.suggestion
  if suggestion and #suggestion.items > 1 then
    for _ = 1, #suggestion.items - 1 do
      suggestion.index = (suggestion.index - 1 + step) % #suggestion.items + 1
      local text = suggestion.items[suggestion.index].text
      if text:sub(1, #suggestion.typed) == suggestion.typed and #text > #suggestion.typed then
        render(bufnr, s)
        return true
      end
    end
    return true
  end
  request(bufnr, TRIGGER_INVOKED)
  return true
end

return M
