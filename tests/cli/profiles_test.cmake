# Optimization profiles through the CLI and the C API. PART=engine: --minShapes/--optShapes/
# --maxShapes are built and echoed by --dumpLayerInfo, --exportLayerInfo and
# anvil_engine_io_profile, a run inside the profile uses its shape, and one outside is a
# clear error (exit 1, naming the input and the range). PART=flags: malformed specs,
# unknown names and shapes outside a profile given on the command line are errors before
# any build; --shapes alone means min = opt = max; --threads=N sets the context's threads.
# -DANVIL=cli -DCAPI=capi_run -DMODEL=tiny_cnn.onnx (input 'input' [N,1,28,28]) -DOUT=dir -DPART=engine|flags
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT})
set(RUN --iterations=1 --duration=0 --warmUp=0)
set(PROFILE --minShapes=input:1x1x28x28 --optShapes=input:2x1x28x28 --maxShapes=input:4x1x28x28)

function(expect_ok what)
  execute_process(COMMAND ${ANVIL} ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what}: anvil exited ${rc}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# expect_error(what "regex the error must match" args...): exit 1 and the message.
function(expect_error what pattern)
  execute_process(COMMAND ${ANVIL} ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "${what}: expected exit 1, got ${rc}\n${out}\n${err}")
  endif()
  if(NOT err MATCHES "${pattern}")
    message(FATAL_ERROR "${what}: the error does not match '${pattern}':\n${err}")
  endif()
  message(STATUS "${what}: ${err}")
endfunction()

if(PART STREQUAL "engine")
  # A profile, a run shape inside it (not opt), the engine saved for the checks below.
  expect_ok("profile build and run" --onnx=${MODEL} ${PROFILE} --shapes=input:3x1x28x28 --dumpLayerInfo
            --exportLayerInfo=${OUT}/layers.json --saveEngine=${OUT}/profile.engine --saveOutputs=${OUT}/out ${RUN})
  if(NOT out MATCHES "input \\(f32\\): min 1x1x28x28, opt 2x1x28x28, max 4x1x28x28")
    message(FATAL_ERROR "--dumpLayerInfo does not show the profile:\n${out}")
  endif()
  file(READ ${OUT}/layers.json json)
  string(JSON p GET "${json}" Profiles 0)
  string(JSON name GET "${p}" Name)
  string(JSON min GET "${p}" Min)
  string(JSON opt GET "${p}" Opt)
  string(JSON max GET "${p}" Max)
  string(REGEX REPLACE "[ \n]" "" range "${min}${opt}${max}")
  if(NOT name STREQUAL "input" OR NOT range STREQUAL "[1,1,28,28][2,1,28,28][4,1,28,28]")
    message(FATAL_ERROR "--exportLayerInfo profile is ${name} ${range}")
  endif()
  # The original per-layer fields stay, the new ones are there.
  string(JSON layer GET "${json}" Layers 0)
  foreach(field Name LayerType Inputs Outputs TacticName Precision Device TacticVersion Timed Candidates
          WorkspaceBytes PreparedBytes OutputLayouts)
    string(JSON v ERROR_VARIABLE e GET "${layer}" ${field})
    if(e)
      message(FATAL_ERROR "--exportLayerInfo layer has no ${field}: ${layer}")
    endif()
  endforeach()
  if(NOT out MATCHES "probs.npy \\(f32\\[3,10\\]\\)")
    message(FATAL_ERROR "the run inside the profile did not use batch 3:\n${out}")
  endif()

  # The loaded engine keeps its profile: inside runs, outside is an error naming the range.
  expect_ok("loaded engine, shape inside" --loadEngine=${OUT}/profile.engine --shapes=input:4x1x28x28 ${RUN})
  expect_error("loaded engine, shape outside" "input 'input'.*min 1x1x28x28, max 4x1x28x28"
               --loadEngine=${OUT}/profile.engine --shapes=input:5x1x28x28 ${RUN})
  # The C API reads the same profile.
  execute_process(COMMAND ${CAPI} --profiles ${OUT}/profile.engine ${OUT} OUTPUT_VARIABLE cout RESULT_VARIABLE rc)
  if(NOT cout MATCHES "profile input min 1x1x28x28 opt 2x1x28x28 max 4x1x28x28")
    message(FATAL_ERROR "anvil_engine_io_profile: ${cout}")
  endif()

  return()
endif()

# Outside the profile given on the same command line: refused before building.
expect_error("build, shape outside" "input 'input'.*min 1x1x28x28, max 4x1x28x28"
             --onnx=${MODEL} ${PROFILE} --shapes=input:8x1x28x28 ${RUN})

# --shapes alone: min = opt = max.
expect_ok("shapes alone" --onnx=${MODEL} --shapes=input:2x1x28x28 --dumpLayerInfo --skipInference)
if(NOT out MATCHES "input \\(f32\\): min 2x1x28x28, opt 2x1x28x28, max 2x1x28x28")
  message(FATAL_ERROR "--shapes alone is not min=opt=max:\n${out}")
endif()

# Malformed specs and unknown names.
expect_error("no dims" "--minShapes entry 'input' is not name:AxBxC" --onnx=${MODEL} --minShapes=input)
expect_error("bad dim" "'q' is not a dimension" --onnx=${MODEL} --maxShapes=input:1xqx28x28)
expect_error("unknown input" "--optShapes: the model has no input 'nosuch' \\(inputs: input\\)"
             --onnx=${MODEL} --optShapes=nosuch:1x1x28x28)
expect_error("min above max" "input 'input': the profile needs min <= opt <= max"
             --onnx=${MODEL} --minShapes=input:4x1x28x28 --maxShapes=input:2x1x28x28)
expect_error("rank" "input 'input' has rank 4" --onnx=${MODEL} --minShapes=input:1x28x28)
expect_error("fixed dim" "input 'input' dim 1 is fixed to 1" --onnx=${MODEL} --maxShapes=input:4x3x28x28)
expect_error("profile with --loadEngine" "use them with --onnx"
             --loadEngine=${OUT}/profile.engine --minShapes=input:1x1x28x28)

# --threads=N is this context's thread count.
expect_ok("threads" --onnx=${MODEL} --threads=1 ${RUN})
if(NOT out MATCHES "Inference threads: 1\n")
  message(FATAL_ERROR "--threads=1 did not set the context's threads:\n${out}")
endif()
