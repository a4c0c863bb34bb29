# include() this from a CMakeLists.txt that adds tests: at the end of that directory, every one of its tests that
# has a TIMEOUT gets it multiplied by CONFIDANT_TEST_TIMEOUT_SCALE. The arm64 cross toolchain
# (cmake/toolchains/aarch64-linux-gnu.cmake) sets the scale to 10, since its tests run under qemu-user 10-20x slower
# than native; host builds leave it unset and nothing changes. The tests themselves stay as they are.
# (CMake < 3.28 can only set test properties from the directory that added the test, hence one include per directory.)
if(NOT COMMAND confidant_scale_test_timeouts)
  function(confidant_scale_test_timeouts)
    if(NOT CONFIDANT_TEST_TIMEOUT_SCALE OR CONFIDANT_TEST_TIMEOUT_SCALE EQUAL 1)
      return()
    endif()
    get_property(tests DIRECTORY PROPERTY TESTS)
    foreach(t IN LISTS tests)
      get_test_property(${t} TIMEOUT timeout)
      if(timeout)
        math(EXPR timeout "${timeout} * ${CONFIDANT_TEST_TIMEOUT_SCALE}")
        set_tests_properties(${t} PROPERTIES TIMEOUT ${timeout})
      endif()
    endforeach()
  endfunction()
endif()
cmake_language(DEFER CALL confidant_scale_test_timeouts)
