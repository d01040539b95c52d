-- nvim --headless --clean -l editors/nvim/tests/run.lua CASE...   (no CASE: list them)
-- Exit status 0 when every case passes; one "ok"/"not ok" line per case.
local here = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h")
package.path = here .. "/?.lua;" .. package.path
local cases = require("cases")

local names = _G.arg
if #names == 0 then
  local all = vim.tbl_keys(cases)
  table.sort(all)
  io.stdout:write(table.concat(all, "\n") .. "\n")
  os.exit(0)
end

local failed = 0
for _, name in ipairs(names) do
  local case = cases[name]
  local ok, err = false, "no such case"
  if case then
    ok, err = xpcall(case, debug.traceback)
  end
  if ok then
    io.stdout:write("ok - " .. name .. "\n")
  else
    failed = failed + 1
    io.stdout:write("not ok - " .. name .. "\n" .. tostring(err) .. "\n")
  end
end
os.exit(failed == 0 and 0 or 1)
