-- :checkhealth codet5
local M = {}

function M.check()
  local health = vim.health
  local codet5 = require("codet5")
  local status = require("codet5.status")
  local lsp = require("codet5.lsp")

  health.start("codet5: Neovim")
  local version = vim.version()
  local text = ("%d.%d.%d"):format(version.major, version.minor, version.patch)
  if vim.fn.has("nvim-0.10") ~= 1 then
    health.error("Neovim " .. text .. ": codet5 needs 0.10 or newer")
  else
    health.ok("Neovim " .. text)
  end

  health.start("codet5: setup")
  local options = codet5.options
  if not options then
    health.warn('require("codet5").setup() has not been called')
    return
  end
  local engine = codet5.engine_for(options)
  health.ok(("ghost text: %s (%s)"):format(engine, engine == "native" and "vim.lsp.inline_completion" or "extmarks"))
  health.info("filetypes: " .. table.concat(options.filetypes, ", "))

  health.start("codet5: server")
  if options.daemon then
    local host, port = require("codet5.config").parse_daemon(options.daemon.address)
    local result = nil
    lsp.probe(host, port, function(err)
      result = err or false
    end)
    vim.wait(6000, function()
      return result ~= nil
    end, 20)
    local token, token_err = require("codet5.config").daemon_token(options.daemon)
    if token_err then
      health.error(token_err, { "point daemon.token_file at the daemon's --token-file" })
    elseif token then
      health.ok("daemon token: from " .. (options.daemon.token_file and vim.fn.expand(options.daemon.token_file) or ("$" .. require("codet5.config").token_env)))
    else
      health.info("no daemon token: a daemon started with a token refuses this editor")
    end
    if result == false then
      health.ok(("daemon at %s:%d accepts connections"):format(host, port))
    else
      health.error(("daemon at %s:%d: %s"):format(host, port, tostring(result or "no answer")),
        { ("start it with `codet5-lsp --tcp --port %d`"):format(port) })
    end
  else
    local exe = options.cmd[1]
    local path = vim.fn.exepath(exe)
    if path == "" then
      health.error(("server executable %q not found"):format(exe),
        { "install the codet5-lsp Python package", 'or set `cmd = { "/full/path/to/codet5-lsp" }` in setup()' })
    else
      health.ok("server executable: " .. path)
    end
  end

  health.start("codet5: model")
  local clients = lsp.clients()
  local state = status.current
  if #clients == 0 then
    local hint = state.state == "error" and (": " .. state.message) or " (open a file of a configured filetype)"
    health.warn("no codet5-lsp client is running" .. hint)
  elseif state.state == "error" then
    health.error(("model %s: %s"):format(state.model, state.message))
  elseif state.state == "ready" then
    health.ok(("%s ready %s"):format(state.model, status.where(state)))
  else
    health.info(("model state: %s %s"):format(state.state, state.message))
  end
  health.info("completions " .. (status.enabled and "on" or "off"))
end

return M
