-- The plugin's test cases. Each takes the harness and raises on failure.
-- Run one: nvim --headless --clean -l editors/nvim/tests/run.lua CASE
local H = require("harness")

local ADD = "def add(a, b):\n    retur\n" -- typing "n" at the end of line 2 makes the document the tiny model completes
local COMPLETION = " a + b"

local cases = {}

--- A child with the plugin set up on the real server, a Python file open and the model ready.
--- `env`: environment variables set in the child before setup().
local function ready_child(opts, text, env)
  local child = H.child()
  for name, value in pairs(env or {}) do
    child:lua("vim.env[...] = select(2, ...)", name, value)
  end
  opts = vim.tbl_deep_extend("force", { cmd = H.server_cmd() }, opts or {}) -- the default debounce_ms (0)
  child:lua("require('codet5').setup(...)", opts)
  child:cmd("edit " .. vim.fn.fnameescape(H.file("add.py", text or ADD)))
  H.wait_for("the model to be ready", function()
    return child:lua("return require('codet5.status').current.state") == "ready"
  end)
  return child
end

--- Type `keys` (normal mode keys ending in insert mode) and wait for insert mode.
local function enter_insert(child, keys)
  child:input(keys)
  H.wait_for("insert mode", function()
    return child:mode() == "i"
  end, 5000)
end

--- Type the "n" of "return" at the end of line 2 and wait for the suggestion.
local function suggest(child)
  enter_insert(child, "2GA")
  child:input("n")
  return H.wait_for("the ghost text", function()
    return child:lua("return require('codet5.ghost').text()")
  end, 30000)
end

function cases.complete_and_accept()
  local child = ready_child()
  H.eq(child:lua("return vim.bo.filetype"), "python", "filetype")
  H.eq(child:lua("return require('codet5').statusline()"), "codet5: ready", "statusline")
  local notes = child:notes()
  assert(H.find_note(notes, "codet5: loading"), "a notification while the model loads: " .. vim.inspect(notes))
  assert(H.find_note(notes, "ready on cpu (int8, ctranslate2)"), "a notification when it is ready: " .. vim.inspect(notes))
  H.eq(suggest(child), COMPLETION, "suggestion")
  local marks = child:ghost_marks()
  H.eq(#marks, 1, "one ghost-text extmark")
  local row, col, details = marks[1][2], marks[1][3], marks[1][4]
  H.eq({ row, col }, { 1, #"    return" }, "extmark position")
  H.eq(details.virt_text, { { COMPLETION, "Codet5Suggestion" } }, "virtual text")
  H.eq(details.virt_text_pos, "inline", "virt_text_pos")
  H.eq(child:line(2), "    return", "buffer before accepting")
  child:input("<Tab>")
  H.wait_for("the accepted text", function()
    return child:line(2) == "    return a + b"
  end, 5000)
  H.eq(#child:ghost_marks(), 0, "ghost text after accepting")
  H.eq(child:lua("return vim.api.nvim_win_get_cursor(0)"), { 2, #"    return a + b" }, "cursor after accepting")
  H.eq(child:mode(), "i", "still in insert mode")
  child:input("<Esc>")
  H.eq(child:lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"), { "def add(a, b):", "    return a + b" }, "buffer")
  child:close()
end

function cases.dismiss()
  local child = ready_child()
  H.eq(suggest(child), COMPLETION, "suggestion")
  child:input("<C-]>")
  H.wait_for("the ghost text to go", function()
    return #child:ghost_marks() == 0
  end, 5000)
  H.stays("no new suggestion until the text changes", function()
    return #child:ghost_marks() == 0
  end, 500)
  H.eq(child:line(2), "    return", "buffer after dismissing")
  child:input("<Tab>")
  H.wait_for("Tab to fall back to inserting indentation", function()
    return child:line(2) ~= "    return"
  end, 5000)
  H.matches(child:line(2), "^    return%s+$", "Tab without a suggestion")
  child:close()
end

function cases.accept_word_and_line()
  local child = ready_child()
  H.eq(suggest(child), COMPLETION, "suggestion")
  child:input("<M-Right>")
  H.wait_for("one word accepted", function()
    return child:line(2) == "    return a"
  end, 5000)
  H.eq(child:lua("return require('codet5.ghost').text()"), " + b", "rest still shown")
  H.eq(child:ghost_marks()[1][4].virt_text, { { " + b", "Codet5Suggestion" } }, "virtual text after a word")
  child:input("<M-Right>")
  H.wait_for("the next word", function()
    return child:line(2) == "    return a +"
  end, 5000)
  child:input("<M-C-Right>")
  H.wait_for("the rest of the line", function()
    return child:line(2) == "    return a + b"
  end, 5000)
  H.eq(#child:ghost_marks(), 0, "nothing left to show")
  child:close()
end

function cases.typed_ahead()
  local child = ready_child()
  H.eq(suggest(child), COMPLETION, "suggestion")
  child:input(" a")
  H.wait_for("the rest after typing its beginning", function()
    return child:lua("return require('codet5.ghost').text()") == " + b"
  end, 5000)
  child:input(" x")
  H.wait_for("the suggestion to go when the typing differs", function()
    return child:lua("return require('codet5.ghost').text()") ~= " + b"
  end, 5000)
  child:close()
end

function cases.debounce_holds_typed_requests_only()
  local child = ready_child({ debounce_ms = 100000 })
  enter_insert(child, "2GA")
  child:input("n")
  H.stays("no automatic request while the plugin's debounce runs", function()
    return #child:ghost_marks() == 0
  end, 1000)
  child:input("<M-]>") -- asking by hand does not wait
  H.eq(H.wait_for("the ghost text asked for by hand", function()
    return child:lua("return require('codet5.ghost').text()")
  end, 30000), COMPLETION, "suggestion")
  child:close()
end

function cases.tab_falls_back_to_the_users_mapping()
  local child = H.child()
  child:lua("vim.keymap.set('i', '<Tab>', '<C-r>=\"[tab]\"<CR>')")
  child:lua("require('codet5').setup(...)", { cmd = H.server_cmd(), auto_trigger = false })
  child:cmd("edit " .. vim.fn.fnameescape(H.file("plain.py", "x = 1\n")))
  child:input("A<Tab><Esc>")
  H.wait_for("the user's Tab mapping", function()
    return child:line(1) == "x = 1[tab]"
  end, 5000)
  child:lua("require('codet5').stop()")
  H.eq(child:lua("return vim.fn.maparg('<Tab>', 'i')"), '<C-R>="[tab]"<CR>', "the user's mapping is back after stop()")
  child:close()
end

--- The server's `codet5.status` reply.
local function server_status(child)
  return child:lua([[
    local client = require('codet5.lsp').client(0)
    local reply = client:request_sync('workspace/executeCommand', { command = 'codet5.status' }, 5000, 0)
    return reply and reply.result
  ]])
end

--- The settings the server is using.
local function server_settings(child)
  local status = server_status(child)
  return status and status.settings
end

function cases.settings_reach_the_server()
  local child = ready_child({ settings = { completionMode = "line", contextTokens = 512 } })
  local settings = server_settings(child)
  H.eq({ settings.completionMode, settings.contextTokens }, { "line", 512 }, "initializationOptions")
  H.eq(settings.threads, 1, "the command line's --threads, not overridden")
  child:lua("require('codet5').configure({ maxNewTokens = 8 })")
  H.wait_for("didChangeConfiguration", function()
    return server_settings(child).maxNewTokens == 8
  end, 10000)
  H.eq(#vim.tbl_filter(function(note) return note.level >= vim.log.levels.WARN end, child:notes()), 0, "no warnings")
  child:close()
end

--- Where the server's latest prewarm was ({uri, line, character}).
local function server_prewarm(child)
  local status = server_status(child)
  return status and status.prewarm ~= vim.NIL and status.prewarm or nil
end

function cases.cursor_reaches_the_server()
  local child = ready_child({}, "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n")
  child:input("5G4|") -- normal mode: line 5, column 4 (0-based 3)
  local at = H.wait_for("a prewarm at the cursor", function()
    local prewarm = server_prewarm(child)
    return prewarm and prewarm.line == 4 and prewarm.character == 3 and prewarm
  end, 20000)
  H.matches(at.uri, "add%.py$", "the buffer's document")
  child:input("1G") -- and after moving again
  H.wait_for("a prewarm at the new cursor", function()
    local prewarm = server_prewarm(child)
    return prewarm and prewarm.line == 0 and prewarm.character == 3
  end, 20000)
  child:close()
end

function cases.toggle()
  local child = ready_child()
  child:cmd("Codet5Toggle")
  H.eq(child:lua("return require('codet5').statusline()"), "codet5: off", "statusline when off")
  assert(H.find_note(child:notes(), "codet5: completions off"), "toggle says so")
  H.wait_for("the server to have enabled=false", function()
    return server_settings(child).enabled == false
  end, 10000)
  child:input("2GAn")
  H.stays("no suggestion while off", function()
    return #child:ghost_marks() == 0
  end, 600)
  child:input("<Esc>")
  child:cmd("Codet5Toggle")
  H.eq(child:lua("return require('codet5').statusline()"), "codet5: ready", "statusline when on again")
  enter_insert(child, "A<BS>")
  child:input("n")
  H.wait_for("a suggestion once on again", function()
    return child:lua("return require('codet5.ghost').text()") == COMPLETION
  end, 30000)
  child:close()
end

function cases.status_and_docstring_commands()
  local child = ready_child()
  child:cmd("Codet5Status")
  H.wait_for("the status message", function()
    return H.find_note(child:notes(), "codet5: ready, llama-int8 on cpu (int8, ctranslate2); typed-ahead cache")
  end, 10000)
  local offered = child:lua([[
    local commands = require('codet5.lsp').client(0).server_capabilities.executeCommandProvider.commands
    return vim.tbl_contains(commands, 'codet5.generateDocstring')
  ]])
  child:cmd("call cursor(1, 5)")
  child:cmd("Codet5Docstring")
  if offered then
    H.wait_for("the docstring inserted by the server", function()
      return table.concat(child:lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"), "\n"):find('"""') ~= nil
    end, 60000)
  else
    H.wait_for("the 'not offered yet' warning", function()
      return H.find_note(child:notes(), 'does not offer "codet5.generateDocstring" yet', vim.log.levels.WARN)
    end, 10000)
  end
  child:close()
end

local RETURN = "def add(a, b):\n    return\n" -- the tiny model completes the end of line 2 with " a + b"

function cases.insert_enter_requests()
  local child = ready_child({}, RETURN)
  child:input("2GA")
  H.eq(H.wait_for("a suggestion on entering insert mode, before any keystroke", function()
    return child:lua("return require('codet5.ghost').text()")
  end, 30000), COMPLETION, "suggestion")
  child:close()
  child = ready_child({ request_on_insert_enter = false }, RETURN)
  enter_insert(child, "2GA")
  H.stays("no request on entering insert mode when turned off", function()
    return #child:ghost_marks() == 0
  end, 600)
  child:close()
end

function cases.status_says_why_there_is_no_suggestion()
  local child = ready_child({ settings = { disabledLanguages = { "python" } } }, RETURN)
  enter_insert(child, "2GA") -- entering insert mode asks; the server declines
  local ok = pcall(H.wait_for, "the reason in :Codet5Status", function()
    child:cmd("Codet5Status")
    return H.find_note(child:notes(), "; last without a suggestion: completions are off for this language (codet5.disabledLanguages) (language-disabled, add.py:2)")
  end, 10000)
  assert(ok, vim.inspect(child:notes()))
  child:close()
end

function cases.unknown_server_settings_are_reported()
  local child = ready_child({ settings = { maxNewTokens = 8, colour = "red" } })
  assert(H.find_note(child:notes(), 'codet5: unknown server setting "colour" (ignored)', vim.log.levels.WARN),
    vim.inspect(child:notes()))
  H.eq(server_settings(child).maxNewTokens, 8, "the known setting still reaches the server")
  child:close()
end

function cases.checkhealth()
  local child = ready_child()
  child:cmd("checkhealth codet5")
  local report = table.concat(child:lua("return vim.api.nvim_buf_get_lines(0, 0, -1, false)"), "\n")
  H.matches(report, "OK Neovim %d+%.%d+%.%d+", "Neovim version")
  H.matches(report, "OK server executable: ", "server executable")
  H.matches(report, "OK llama%-int8 ready on cpu %(int8, ctranslate2%)", "model state")
  H.matches(report, "ghost text: %a+", "engine")
  child:close()
end

function cases.server_missing()
  local child = H.child()
  child:lua("require('codet5').setup(...)", { cmd = { "/nonexistent/codet5-lsp" } })
  local note = H.find_note(child:notes(), "/nonexistent/codet5-lsp", vim.log.levels.ERROR)
  assert(note, "an error naming the command: " .. vim.inspect(child:notes()))
  H.matches(note.message, "is not an executable", "message")
  H.matches(note.message, "set `cmd`", "message says what to do")
  H.eq(child:lua("return require('codet5').statusline()"), "codet5: error", "statusline")
  child:cmd("edit " .. vim.fn.fnameescape(H.file("add.py", ADD)))
  child:input("2GAn<Tab><Esc>")
  H.wait_for("typing and Tab to work without a server", function()
    return child:mode() == "n" and child:line(2):find("^    return%s+$") ~= nil
  end, 5000)
  child:cmd("Codet5Status")
  assert(H.find_note(child:notes(), "no codet5-lsp client in this buffer: cannot start the server"), vim.inspect(child:notes()))
  child:close()
end

function cases.server_exits_at_start()
  local child = H.child()
  local python = H.server[1]
  child:lua("require('codet5').setup(...)", { cmd = { python, "-c", "import sys; sys.exit(3)" } })
  child:cmd("edit " .. vim.fn.fnameescape(H.file("add.py", ADD)))
  local note = H.wait_for("an error when the server exits", function()
    return H.find_note(child:notes(), "codet5-lsp exited (code 3", vim.log.levels.ERROR)
  end, 20000)
  H.matches(note.message, ":checkhealth codet5", "message says where to look")
  H.eq(child:lua("return require('codet5').statusline()"), "codet5: error", "statusline")
  child:close()
end

function cases.daemon()
  local process, port = H.daemon()
  local ok, err = pcall(function()
    local child = ready_child({ cmd = { "/nonexistent/not-used" }, daemon = "127.0.0.1:" .. port, settings = { model = "ignored", maxNewTokens = 16 } })
    H.eq(suggest(child), COMPLETION, "suggestion from the daemon")
    local reply = child:lua([[
      return require('codet5.lsp').client(0):request_sync('workspace/executeCommand', { command = 'codet5.status' }, 5000, 0).result
    ]])
    H.eq(reply.settings.model, H.model, "the daemon's model")
    H.eq(reply.settings.maxNewTokens, 16, "per-editor settings reach the daemon")
    assert(not H.find_note(child:notes(), "model settings from the editor are ignored"), "no model settings sent to a daemon")
    child:close()
  end)
  process:kill(15)
  process:wait(5000)
  assert(ok, err)
end

local TOKEN = "s3cret-token-for-the-test"

--- A daemon started with --token-file: its process, port and token file.
local function token_daemon()
  local token_file = H.file("token", TOKEN .. "\n")
  local process, port = H.daemon({ "--token-file", token_file })
  return process, port, token_file
end

--- The token is in no notification, in no client's config (:checkhealth vim.lsp prints it) and not in the LSP log.
local function token_nowhere(child)
  assert(not vim.inspect(child:notes()):find(TOKEN, 1, true), "the token in a notification")
  local configs = child:lua("return vim.inspect(vim.tbl_map(function(c) return c.config end, vim.lsp.get_clients()))")
  assert(not configs:find(TOKEN, 1, true), "the token in a client's config")
  local log = child:lua("local f = io.open(vim.lsp.get_log_path()); if not f then return '' end; local t = f:read('*a'); f:close(); return t")
  assert(not log:find(TOKEN, 1, true), "the token in the LSP log")
end

function cases.daemon_token()
  local process, port, token_file = token_daemon()
  local address = "127.0.0.1:" .. port
  local ok, err = pcall(function()
    local child = ready_child({ daemon = { address = address, token_file = token_file } }, nil, { CODET5_LSP_TOKEN = "not-the-token" })
    H.eq(suggest(child), COMPLETION, "suggestion with the token from token_file (it wins over the environment)")
    token_nowhere(child)
    child:close()
    child = ready_child({ daemon = address }, nil, { CODET5_LSP_TOKEN = TOKEN })
    H.eq(suggest(child), COMPLETION, "suggestion with the token from $CODET5_LSP_TOKEN")
    token_nowhere(child)
    child:close()
  end)
  process:kill(15)
  process:wait(5000)
  assert(ok, err)
end

function cases.daemon_token_refused()
  local process, port = token_daemon()
  local address = "127.0.0.1:" .. port
  local ok, err = pcall(function()
    for _, daemon in ipairs({ { address = address, token_file = H.file("wrong", "not-the-token\n") }, address }) do
      local child = H.child()
      child:lua("vim.env.CODET5_LSP_TOKEN = nil")
      child:lua("require('codet5').setup(...)", { cmd = { "/nonexistent/not-used" }, daemon = daemon })
      child:cmd("edit " .. vim.fn.fnameescape(H.file("add.py", ADD)))
      local note = H.wait_for("an error saying the daemon refused the token", function()
        return H.find_note(child:notes(), "the daemon at " .. address .. " refused this editor: the token is wrong or missing", vim.log.levels.ERROR)
      end, 20000)
      H.matches(note.message, "token_file", "the message names the option")
      H.matches(note.message, "CODET5_LSP_TOKEN", "and the environment variable")
      H.stays("the error stays when the daemon closes the connection", function()
        return child:lua("return require('codet5').statusline()") == "codet5: error"
      end, 1000)
      token_nowhere(child)
      child:close()
    end
    assert(not process:is_closing(), "the daemon keeps serving")
  end)
  process:kill(15)
  process:wait(5000)
  assert(ok, err)
end

function cases.daemon_token_file_unreadable()
  local child = H.child()
  child:lua("require('codet5').setup(...)", { daemon = { address = "127.0.0.1:" .. H.closed_port(), token_file = "/nonexistent/codet5-token" } })
  local note = H.wait_for("an error naming the token file", function()
    return H.find_note(child:notes(), "cannot read daemon.token_file /nonexistent/codet5-token", vim.log.levels.ERROR)
  end, 10000)
  assert(not H.find_note(child:notes(), "cannot connect"), "nothing was tried: " .. note.message)
  child:close()
end

function cases.daemon_unreachable()
  local child = H.child()
  local port = H.closed_port()
  child:lua("require('codet5').setup(...)", { daemon = "127.0.0.1:" .. port })
  local note = H.wait_for("an error naming the daemon", function()
    return H.find_note(child:notes(), "cannot connect to the codet5-lsp daemon at 127.0.0.1:" .. port, vim.log.levels.ERROR)
  end, 10000)
  H.matches(note.message, "codet5%-lsp %-%-tcp %-%-port " .. port, "message says how to start it")
  child:close()
end

function cases.restart()
  local child = ready_child()
  local before = child:lua("return require('codet5.lsp').client(0).id")
  child:cmd("Codet5Restart")
  H.wait_for("a new client, ready", function()
    local client = child:lua("local c = require('codet5.lsp').client(0) return c and c.id")
    return client and client ~= before and child:lua("return require('codet5.status').current.state") == "ready"
  end, 30000)
  H.wait_for("the old client to be gone", function()
    return child:lua("return #vim.lsp.get_clients({ name = 'codet5' })") == 1
  end, 10000)
  H.eq(suggest(child), COMPLETION, "suggestion after the restart")
  H.eq(child:lua("return require('codet5.status').current.state"), "ready", "state after the old client exited")
  child:close()
end

function cases.help()
  local child = H.child()
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir .. "/doc", "p")
  vim.fn.writefile(vim.fn.readfile(H.plugin_root .. "/doc/codet5.txt"), dir .. "/doc/codet5.txt")
  child:cmd("helptags " .. vim.fn.fnameescape(dir .. "/doc"))
  child:cmd("set rtp^=" .. vim.fn.fnameescape(dir))
  for _, tag in ipairs({ "codet5", "codet5-keys", ":Codet5Toggle", "codet5-daemon", "codet5.accept()", "hl-Codet5Suggestion" }) do
    child:cmd("help " .. tag)
    H.eq(child:lua("return vim.fn.expand('%:t')"), "codet5.txt", "help " .. tag)
  end
  child:close()
end

return cases
