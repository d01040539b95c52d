-- Ghost text by Neovim's own vim.lsp.inline_completion (0.12+): enable per buffer, accept, cycle.
-- It has no partial accept: accept word/line need engine = "plugin".
local M = {}

M.enabled = true
local attached = {} ---@type table<integer, boolean>

function M.available()
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end

---@param bufnr integer
function M.attach(bufnr)
  attached[bufnr] = true
  vim.lsp.inline_completion.enable(M.enabled, { bufnr = bufnr })
end

---@param bufnr integer
function M.detach(bufnr)
  if attached[bufnr] and vim.api.nvim_buf_is_valid(bufnr) then
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
  end
  attached[bufnr] = nil
end

--- Turn suggestions on or off in every attached buffer.
---@param enabled boolean
function M.set_enabled(enabled)
  M.enabled = enabled
  for bufnr in pairs(attached) do
    if vim.api.nvim_buf_is_valid(bufnr) then
      vim.lsp.inline_completion.enable(enabled, { bufnr = bufnr })
    end
  end
end

---@param what "all"|"word"|"line"
---@return boolean accepted
function M.accept(what)
  if what ~= "all" then
    vim.notify_once('codet5: accept word/line need require("codet5").setup({ engine = "plugin" }) on this Neovim', vim.log.levels.WARN)
    return false
  end
  return vim.lsp.inline_completion.get() == true
end

--- The native engine has no dismiss: switching it off and on for the buffer hides the suggestion.
---@return boolean
function M.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  if not (attached[bufnr] and M.enabled) then
    return false
  end
  vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
  vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  return true
end

---@param step integer
---@return boolean
function M.cycle(step)
  if not attached[vim.api.nvim_get_current_buf()] then
    return false
  end
  vim.lsp.inline_completion.select({ count = step })
  return true
end

return M
