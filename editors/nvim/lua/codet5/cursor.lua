-- Tells the server where the cursor is (`codet5/cursor`) when it enters a buffer or rests after a
-- move, so the server can compute the prompt there while the editor is quiet (its `prewarm` setting).
local lsp = require("codet5.lsp")

local M = {}

M.delay_ms = 150 -- a report goes out this long after the last move (one per pause, not per key)
local group = vim.api.nvim_create_augroup("codet5.cursor", { clear = true })
local timers = {} ---@type table<integer, uv.uv_timer_t>

local function report(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_get_current_buf() ~= bufnr then
    return
  end
  local client = lsp.client(bufnr)
  if client then
    lsp.notify(client, "codet5/cursor", vim.lsp.util.make_position_params(0, client.offset_encoding))
  end
end

--- Report the cursor of `bufnr` on entering it and after it moves.
---@param bufnr integer
function M.attach(bufnr)
  if timers[bufnr] then
    return
  end
  local timer = assert(vim.uv.new_timer())
  timers[bufnr] = timer
  local function later()
    timer:stop()
    timer:start(M.delay_ms, 0, vim.schedule_wrap(function()
      report(bufnr)
    end))
  end
  vim.api.nvim_create_autocmd({ "BufEnter", "CursorMoved", "CursorMovedI" }, { group = group, buffer = bufnr, callback = later })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
  later() -- attached to the buffer the user is in: BufEnter has passed
end

---@param bufnr integer
function M.detach(bufnr)
  local timer = timers[bufnr]
  if not timer then
    return
  end
  timers[bufnr] = nil
  timer:stop()
  timer:close()
  pcall(vim.api.nvim_clear_autocmds, { group = group, buffer = bufnr })
end

return M
