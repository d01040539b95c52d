-- Insert-mode keys that act only when there is something to act on, and otherwise do what the
-- key did before: the mapping it replaced, or the key itself.
local M = {}

local mapped = {} ---@type string[]
local originals = {} ---@type table<string, table>  the user's mappings we replaced, by key

local function feed(keys, remap)
  -- "i": right after this key, before whatever is already typed ahead.
  vim.api.nvim_feedkeys(keys, remap and "mi" or "ni", false)
end

--- Replay the mapping `previous` (from maparg) or, without one, the key itself.
local function fallback(key, previous)
  if not previous or vim.tbl_isempty(previous) then
    return feed(vim.keycode(key), false)
  end
  local remap = previous.noremap ~= 1
  if previous.callback then
    local result = previous.callback()
    if previous.expr == 1 and type(result) == "string" and result ~= "" then
      feed(previous.replace_keycodes == 1 and vim.keycode(result) or result, remap)
    end
    return
  end
  local rhs = previous.rhs or ""
  if previous.expr == 1 then
    rhs = vim.api.nvim_eval(rhs)
  end
  feed(vim.keycode(rhs), remap)
end

--- Map `key` in insert mode to `action`, which returns true when it handled the key.
---@param key string|false
---@param action fun(): boolean
---@param desc string
local function map(key, action, desc)
  if not key or key == "" then
    return
  end
  local previous = vim.fn.maparg(key, "i", false, true)
  if vim.tbl_isempty(previous) then
    previous = nil
  else
    originals[key] = previous
  end
  vim.keymap.set("i", key, function()
    if not action() then
      fallback(key, previous)
    end
  end, { desc = desc, silent = true })
  table.insert(mapped, key)
end

--- Install the keys of `keys` on the functions of `api` (accept, accept_word, ...).
---@param keys codet5.Keys
---@param api table
function M.install(keys, api)
  M.remove()
  map(keys.accept, api.accept, "codet5: accept suggestion")
  map(keys.accept_word, api.accept_word, "codet5: accept next word")
  map(keys.accept_line, api.accept_line, "codet5: accept next line")
  map(keys.dismiss, api.dismiss, "codet5: dismiss suggestion")
  map(keys.next, api.next, "codet5: next suggestion")
  map(keys.prev, api.prev, "codet5: previous suggestion")
end

--- Remove our keys and put back the mappings they replaced.
function M.remove()
  for _, key in ipairs(mapped) do
    pcall(vim.keymap.del, "i", key)
    if originals[key] then
      vim.fn.mapset("i", false, originals[key])
      originals[key] = nil
    end
  end
  mapped = {}
end

return M
