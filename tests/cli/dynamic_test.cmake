# Outputs of data-dependent size and zero-element inputs, through the CLI and the C API:
# NonZero's output comes back through an output allocator (CLI --saveOutputs; capi_run's
# anvil_context_set_output_allocator callbacks) at its final shape, and a batch of zero
# images binds (nullptr) and runs to an output of zero rows.
# -DANVIL=cli -DCAPI=capi_run -DPY=python (numpy, onnx) -DNODE=Debian node-test dir
# -DMODEL=tiny_cnn.onnx -DOUT=dir
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/cli ${OUT}/capi ${OUT}/zero)
set(RUN --iterations=1 --duration=0 --warmUp=0)
set(CASE ${NODE}/test_nonzero_example)
if(NOT EXISTS ${CASE}/model.onnx)
  message(FATAL_ERROR "no node test ${CASE} (Debian's libonnx-testdata)")
endif()

function(py what)
  execute_process(COMMAND ${PY} -c "${ARGN}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${what}: ${out}")
endfunction()

# The case's input as .npy (for the CLI) and raw bytes (for capi_run).
py("inputs" "
import numpy as np, onnx
from onnx import numpy_helper as nh
t = onnx.TensorProto(); t.ParseFromString(open('${CASE}/test_data_set_0/input_0.pb', 'rb').read())
a = nh.to_array(t); np.save('${OUT}/condition.npy', a); a.tofile('${OUT}/condition.bin')
np.save('${OUT}/zero.npy', np.zeros((0, 1, 28, 28), np.float32))
print(a.shape)")

execute_process(COMMAND ${ANVIL} --onnx=${CASE}/model.onnx --loadInputs=condition:${OUT}/condition.npy
                        --saveOutputs=${OUT}/cli --saveEngine=${OUT}/nonzero.engine ${RUN}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "anvil on NonZero exited ${rc}:\n${out}\n${err}")
endif()
execute_process(COMMAND ${CAPI} --threads=1 ${OUT}/nonzero.engine ${OUT}/capi condition:2x2:${OUT}/condition.bin
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "capi_run on NonZero exited ${rc}:\n${out}\n${err}")
endif()
py("NonZero matches through the CLI and the C API" "
import numpy as np, onnx
from onnx import numpy_helper as nh
t = onnx.TensorProto(); t.ParseFromString(open('${CASE}/test_data_set_0/output_0.pb', 'rb').read())
want = nh.to_array(t)
cli = np.load('${OUT}/cli/result.npy')
dims, dtype = open('${OUT}/capi/0.shape').read().split()
capi = np.fromfile('${OUT}/capi/0.bin', dtype=np.int64).reshape([int(d) for d in dims.split('x')])
assert dtype == '7', dtype
assert cli.shape == want.shape and (cli == want).all(), ('cli', cli, want)
assert capi.shape == want.shape and (capi == want).all(), ('capi', capi, want)
print(want.shape)")

# Zero images: the input binds with no data and the output has zero rows.
execute_process(COMMAND ${ANVIL} --onnx=${MODEL} --shapes=input:0x1x28x28 --loadInputs=input:${OUT}/zero.npy
                        --saveOutputs=${OUT}/zero ${RUN}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "anvil on a zero-element input exited ${rc}:\n${out}\n${err}")
endif()
py("zero batch" "
import numpy as np
a = np.load('${OUT}/zero/probs.npy'); assert a.shape == (0, 10), a.shape; print(a.shape)")
