# --power: the performance summary ends with a Power line (a reading, or "no source" and
# why), --exportProfile carries powerW/energyJ/powerSource/inferencesPerSecondPerWatt,
# --power=none prints none and a bad mode is an error before building.
file(MAKE_DIRECTORY ${OUT})
function(run_anvil var)
  execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --warmUp=0 --duration=0.3 ${ARGN}
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "anvil ${ARGN} failed (rc ${rc}):\n${out}${err}")
  endif()
  set(${var} "${out}" PARENT_SCOPE)
endfunction()

run_anvil(auto --exportProfile=${OUT}/profile.json)
string(REGEX MATCH "\\[I\\] Power: [^\n]*" line "${auto}")
if(NOT line)
  message(FATAL_ERROR "no Power line in the summary:\n${auto}")
endif()
message(STATUS "${line}")
# A CPU engine measures through RAPL: a reading where the counters are readable, else the reason.
if(NOT line MATCHES "W average over .* s \\(RAPL package-[0-9].*, CPU package\\), .* inferences/s/W"
   AND NOT line MATCHES "no source \\(RAPL"
   AND NOT line MATCHES "no reading: the counter did not advance")
  message(FATAL_ERROR "unexpected Power line: ${line}")
endif()
if(NOT EXISTS /sys/class/powercap AND NOT line MATCHES "no source \\(RAPL: no counters \\(/sys/class/powercap absent\\)\\)")
  message(FATAL_ERROR "this machine has no /sys/class/powercap, yet: ${line}")
endif()
file(READ ${OUT}/profile.json profile)
foreach(key powerW energyJ powerSource inferencesPerSecondPerWatt count)
  if(NOT profile MATCHES "\"${key}\": ")
    message(FATAL_ERROR "--exportProfile lacks ${key}:\n${profile}")
  endif()
endforeach()

run_anvil(nvml --power=nvml)
if(NOT nvml MATCHES "\\[I\\] Power: [^\n]*NVML")
  message(FATAL_ERROR "--power=nvml does not name NVML:\n${nvml}")
endif()

run_anvil(none --power=none --exportProfile=${OUT}/none.json)
if(none MATCHES "Power:")
  message(FATAL_ERROR "--power=none still printed a Power line:\n${none}")
endif()
file(READ ${OUT}/none.json profile)
if(profile MATCHES "powerW")
  message(FATAL_ERROR "--power=none still exported power:\n${profile}")
endif()

execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --power=watts OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "--power is auto, rapl, nvml or none, got 'watts'")
  message(FATAL_ERROR "--power=watts was not rejected (rc ${rc}):\n${out}${err}")
endif()
