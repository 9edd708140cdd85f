/*
 * Test fixture for envrepro. NVIDIA's license block and the API declarations of the real file are left
 * out; up to cuDNN 7 the version macros lived here, in cudnn.h, column-aligned as below
 * (see tests/cases/gpu-t4-driver470/SOURCE.md).
 */

/*   cudnn : Neural Networks Library

*/

#if !defined(CUDNN_H_)
#define CUDNN_H_

#define CUDNN_MAJOR      7
#define CUDNN_MINOR      6
#define CUDNN_PATCHLEVEL 5

#define CUDNN_VERSION    (CUDNN_MAJOR * 1000 + CUDNN_MINOR * 100 + CUDNN_PATCHLEVEL)

#include "driver_types.h"
#include <cuda_runtime.h>

#endif /* CUDNN_H_ */
