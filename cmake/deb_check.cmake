# deb_check.cmake - run by cpack before it builds the package (CPACK_PRE_BUILD_SCRIPTS, from
# cmake/package.cmake): a package without its man pages, or with paths outside /usr, is refused
# with what to do, rather than built.
if(NOT CPACK_PACKAGING_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "floodshare: the package is built with the /usr prefix, not "
          "\"${CPACK_PACKAGING_INSTALL_PREFIX}\": configure with -DCMAKE_INSTALL_PREFIX=/usr")
endif()
foreach(page man1/floodshare.1.gz man5/floodshare.ini.5.gz)
  if(NOT EXISTS "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/usr/share/man/${page}")
    message(FATAL_ERROR "floodshare: the package needs its man pages, made by scdoc: "
            "apt-get install scdoc, then configure and build again")
  endif()
endforeach()
