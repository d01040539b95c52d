-- Commands of the codet5 plugin; the client starts with require("codet5").setup().
if vim.g.loaded_codet5 then
  return
end
vim.g.loaded_codet5 = true

local function command(name, fn, desc)
  vim.api.nvim_create_user_command(name, function()
    local codet5 = require("codet5")
    if not codet5.options then
      return vim.notify('codet5: call require("codet5").setup() first', vim.log.levels.WARN)
    end
    fn(codet5)
  end, { desc = desc })
end

command("Codet5Toggle", function(codet5) codet5.toggle() end, "codet5: turn completions on or off")
command("Codet5Docstring", function(codet5) codet5.docstring() end, "codet5: write the docstring of the function at the cursor")
command("Codet5Status", function(codet5) codet5.status() end, "codet5: show the model and its state")
command("Codet5Restart", function(codet5) codet5.restart() end, "codet5: restart the server")
