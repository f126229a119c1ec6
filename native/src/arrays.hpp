// Argument checking shared by the bindings (tripwire._native, tripwire._feedcheck): arrays
// of exactly one dtype.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace tripwire_bind {

namespace py = pybind11;

template <class T>
const char* dtype_name();
template <> inline const char* dtype_name<int32_t>() { return "int32"; }
template <> inline const char* dtype_name<int64_t>() { return "int64"; }
template <> inline const char* dtype_name<double>() { return "float64"; }

// A 1-D array of exactly dtype T (C-contiguous view or copy), or a TypeError naming the
// argument. Silent casts would hide a caller passing prices as float32 or ids as int64.
template <class T>
py::array_t<T, py::array::c_style> expect_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array of " + dtype_name<T>() +
                         ", got " + std::string(py::str(obj.get_type().attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  // Equivalence, not identity: arrays unpickled from Ray's object store carry equal but
  // distinct dtype objects.
  if (!py::detail::npy_api::get().PyArray_EquivTypes_(arr.dtype().ptr(),
                                                      py::dtype::of<T>().ptr())) {
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(arr.dtype())));
  }
  if (arr.ndim() != 1) {
    throw py::value_error(std::string(name) + " must be 1-D, got " +
                          std::to_string(arr.ndim()) + " dimensions");
  }
  return py::array_t<T, py::array::c_style>::ensure(arr);
}

}  // namespace tripwire_bind
