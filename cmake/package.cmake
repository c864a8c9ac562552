# package.cmake - what `cmake --install` puts in place, and `cpack -G DEB` (issue 15):
#   bin/floodshare
#   man pages floodshare(1) and floodshare.ini(5), made from docs/man/*.scd by scdoc (Debian
#     package scdoc) at build time; without scdoc the build leaves them out and says so, and
#     cpack refuses to package (cmake/deb_check.cmake)
#   bash completion (dist/floodshare.bash)
#   floodshare@.service, the systemd template unit (dist/floodshare@.service.in)
#   the empty /etc/floodshare for the units' INIs, an example INI (dist/one.ini), the
#   copyright file and the changelog
# The package is built with the /usr prefix (lintian and the unit's paths want it):
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release -DFS_TESTS=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
# tests/integration/test_package.py builds it so and installs it into a fresh Debian 12 chroot.
include(GNUInstallDirs)

set(FS_DEB_MAINTAINER "floodshare maintainers <maintainers@users.noreply.h-seed-2b7a29b1.example>"
    CACHE STRING "The Maintainer of the Debian package")
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  # Debian 12 keeps packaged units in /lib/systemd/system (lintian 2.116 flags /usr/lib/...).
  set(fs_unitdir_default /lib/systemd/system)
else()
  set(fs_unitdir_default lib/systemd/system) # under the prefix: /usr/local/lib/systemd/system
endif()
set(FS_SYSTEMD_UNIT_DIR ${fs_unitdir_default} CACHE STRING
    "Where floodshare@.service is installed (relative: under the prefix)")
set(FS_BASH_COMPLETION_DIR ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
    CACHE STRING "Where the bash completion is installed (relative: under the prefix)")
# The unit names these absolute paths, so they are the configure-time prefix's (a later
# `cmake --install --prefix` moves the files, not the unit's paths).
set(FS_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(FS_CONFDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/floodshare)
set(FS_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/floodshare)

install(TARGETS floodshare RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# --- man pages: scdoc, then gzip -9n (no name or time in the header: reproducible) ---
find_program(SCDOC scdoc)
set(fs_gz_files)
if(SCDOC)
  foreach(page floodshare.1 floodshare.ini.5)
    set(src ${CMAKE_SOURCE_DIR}/docs/man/${page}.scd)
    set(out ${CMAKE_BINARY_DIR}/${page}.gz)
    string(REGEX MATCH "[0-9]$" section ${page})
    add_custom_command(OUTPUT ${out}
      COMMAND sh -c "\"$0\" < \"$1\" | gzip -9n > \"$2.tmp\" && mv \"$2.tmp\" \"$2\""
              ${SCDOC} ${src} ${out}
      DEPENDS ${src}
      COMMENT "scdoc: ${page}"
      VERBATIM)
    list(APPEND fs_gz_files ${out})
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
else()
  message(STATUS "scdoc not found: the man pages are left out of the build and the install "
                 "(apt-get install scdoc); cpack refuses to package without them")
endif()

# --- the changelog (its version is the project's) ---
configure_file(${CMAKE_SOURCE_DIR}/dist/debian/changelog.in ${CMAKE_BINARY_DIR}/changelog @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/changelog.gz
  COMMAND sh -c "gzip -9n < \"$0\" > \"$1.tmp\" && mv \"$1.tmp\" \"$1\""
          ${CMAKE_BINARY_DIR}/changelog ${CMAKE_BINARY_DIR}/changelog.gz
  DEPENDS ${CMAKE_BINARY_DIR}/changelog
  VERBATIM)
list(APPEND fs_gz_files ${CMAKE_BINARY_DIR}/changelog.gz)
add_custom_target(fs_docs ALL DEPENDS ${fs_gz_files})
configure_file(${CMAKE_SOURCE_DIR}/dist/debian/copyright ${CMAKE_BINARY_DIR}/copyright @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/copyright ${CMAKE_BINARY_DIR}/changelog.gz
        DESTINATION ${FS_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/dist/one.ini DESTINATION ${FS_DOCDIR}/examples)

# --- bash completion, the unit, the units' INI folder ---
install(FILES ${CMAKE_SOURCE_DIR}/dist/floodshare.bash DESTINATION ${FS_BASH_COMPLETION_DIR}
        RENAME floodshare)
configure_file(${CMAKE_SOURCE_DIR}/dist/floodshare@.service.in
               ${CMAKE_BINARY_DIR}/floodshare@.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/floodshare@.service DESTINATION ${FS_SYSTEMD_UNIT_DIR})
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  install(DIRECTORY DESTINATION ${FS_CONFDIR}) # /etc/floodshare
else()
  install(DIRECTORY DESTINATION ${CMAKE_INSTALL_SYSCONFDIR}/floodshare)
endif()

# --- cpack -G DEB: floodshare_VERSION_amd64.deb ---
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME floodshare)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${FS_DEB_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "query-flooding peer-to-peer file sharer for LANs and network classes")
# The long description, under the summary; cpack indents it and writes the empty line as " .".
set(CPACK_PACKAGE_DESCRIPTION
"floodshare is a Gnutella-style file sharer: each peer reads its share folder,
TTL and neighbours from an INI file; a query floods to the neighbours with its
TTL lowered at each hop, a hit travels back along the reverse path, and the
file or folder is then fetched from its holder directly, checked by CRC and
MD5. Every protocol event is one readable log line and the wire protocol is
plain text, so a class can watch a flood happen.

This package holds the program, its man pages, bash completion and
floodshare@.service, a systemd template unit that runs one peer per
/etc/floodshare/NAME.ini.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The libraries' packages come from dpkg-shlibdeps (Debian package dpkg-dev); adduser makes
# the unit's user in postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "graphviz")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/dist/debian/postinst
    ${CMAKE_SOURCE_DIR}/dist/debian/prerm ${CMAKE_SOURCE_DIR}/dist/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES ON)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_SOURCE_DIR}/cmake/deb_check.cmake)
include(CPack)
